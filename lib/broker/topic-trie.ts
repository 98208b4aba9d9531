/**
 * A trie of MQTT topic filters for routing: the cost of a match depends on the topic's levels and
 * the wildcard branches, not on the number of filters stored.
 */
import { DOLLAR, HASH, PLUS, hasWildcard, isSharedFilter, levelEnd, sharedStart } from "../topic";

/** One node of {@link TopicTrie}: children per literal level, plus wildcard children. */
class TrieNode<V> {
  /** literal levels (Map: keys such as "__proto__" are data) */
  children: Map<string, TrieNode<V>> | undefined = undefined;
  /** the "+" child */
  plus: TrieNode<V> | undefined = undefined;
  /** the "#" child (a leaf) */
  hash: TrieNode<V> | undefined = undefined;
  /** the ordinary filter ending at this node, if any */
  filter: string | undefined = undefined;
  /** its value */
  value: V | undefined = undefined;
  /** shared subscriptions whose inner filter ends at this node: full filter -> value */
  shared: Map<string, V> | undefined = undefined;
}

function isEmptyNode<V>(n: TrieNode<V>): boolean {
  return (
    n.filter === undefined &&
    n.shared === undefined &&
    n.children === undefined &&
    n.plus === undefined &&
    n.hash === undefined
  );
}

/** Reports the filters stored at `node`. */
function emit<V>(node: TrieNode<V>, fn: (value: V, filter: string) => void): void {
  if (node.filter !== undefined) fn(node.value as V, node.filter);
  if (node.shared !== undefined) {
    for (const [filter, value] of node.shared) fn(value, filter);
  }
}

/**
 * A trie of topic filters, each with one value, for routing broker messages: the cost of
 * match() depends on the topic's levels and on the wildcard branches, not on the number of
 * filters stored. Honors [MQTT-4.7.2-1] ('#' and '+' at the first level never match '$'
 * topics). Children are kept in Maps, so levels such as "__proto__" are plain data.
 *
 * Agrees with {@link matches}: a shared subscription "$share/{name}/{f}" is stored under its
 * inner filter `f` and reported (with its full string) for topics that `f` matches. Filters are
 * expected to be valid (see {@link checkTopicFilter}); they are not re-validated here. Do not
 * modify the trie from inside a match() callback.
 */
class WildcardTree<V> {
  private readonly root = new TrieNode<V>();
  private count = 0;

  /** Number of filters stored. */
  get size(): number {
    return this.count;
  }

  /** Adds `filter` with `value`, or replaces the value of an existing filter. */
  set(filter: string, value: V): void {
    const start = sharedStart(filter);
    let node = this.root;
    let i = start;
    for (;;) {
      const end = levelEnd(filter, i);
      let next: TrieNode<V> | undefined;
      if (end === i + 1 && filter.charCodeAt(i) === PLUS) {
        next = node.plus ??= new TrieNode<V>();
      } else if (end === i + 1 && filter.charCodeAt(i) === HASH) {
        next = node.hash ??= new TrieNode<V>();
      } else {
        const key = filter.slice(i, end);
        const children = (node.children ??= new Map<string, TrieNode<V>>());
        next = children.get(key);
        if (next === undefined) {
          next = new TrieNode<V>();
          children.set(key, next);
        }
      }
      node = next;
      if (end === filter.length) break;
      i = end + 1;
    }
    if (start > 0) {
      const shared = (node.shared ??= new Map<string, V>());
      if (!shared.has(filter)) this.count++;
      shared.set(filter, value);
    } else {
      if (node.filter === undefined) this.count++;
      node.filter = filter;
      node.value = value;
    }
  }

  /** Returns the value stored for exactly this filter string. */
  get(filter: string): V | undefined {
    const start = sharedStart(filter);
    let node: TrieNode<V> | undefined = this.root;
    let i = start;
    for (;;) {
      const end = levelEnd(filter, i);
      if (end === i + 1 && filter.charCodeAt(i) === PLUS) node = node.plus;
      else if (end === i + 1 && filter.charCodeAt(i) === HASH) node = node.hash;
      else node = node.children?.get(filter.slice(i, end));
      if (node === undefined) return undefined;
      if (end === filter.length) break;
      i = end + 1;
    }
    return start > 0 ? node.shared?.get(filter) : node.value;
  }

  /** Removes `filter` and prunes nodes left empty; returns whether it was present. */
  delete(filter: string): boolean {
    const start = sharedStart(filter);
    const path: TrieNode<V>[] = [this.root];
    const keys: string[] = [];
    let node: TrieNode<V> | undefined = this.root;
    let i = start;
    for (;;) {
      const end = levelEnd(filter, i);
      const key = filter.slice(i, end);
      if (key === "+") node = node.plus;
      else if (key === "#") node = node.hash;
      else node = node.children?.get(key);
      if (node === undefined) return false;
      path.push(node);
      keys.push(key);
      if (end === filter.length) break;
      i = end + 1;
    }
    if (start > 0) {
      if (node.shared === undefined || !node.shared.delete(filter)) return false;
      if (node.shared.size === 0) node.shared = undefined;
    } else {
      if (node.filter === undefined) return false;
      node.filter = undefined;
      node.value = undefined;
    }
    this.count--;
    // Prune empty nodes bottom-up (iterative: safe for any depth).
    for (let k = path.length - 1; k > 0; k--) {
      const child = path[k];
      if (!isEmptyNode(child)) break;
      const parent = path[k - 1];
      const key = keys[k - 1];
      if (key === "+") parent.plus = undefined;
      else if (key === "#") parent.hash = undefined;
      else if (parent.children !== undefined) {
        parent.children.delete(key);
        if (parent.children.size === 0) parent.children = undefined;
      }
    }
    return true;
  }

  /**
   * Calls fn once per stored filter that matches `topic` (a valid topic name), with the value
   * and the filter string as stored.
   *
   * Walks the topic by index, without recursion (safe for any number of levels). Do not
   * modify the trie from inside `fn`.
   */
  match(topic: string, fn: (value: V, filter: string) => void): void {
    const len = topic.length;
    // R12 [MQTT-4.7.2-1]: at the root, "+" and "#" never match a topic starting with "$".
    let dollar = topic.charCodeAt(0) === DOLLAR;
    // Iterative depth-first walk. `start` is the start of the current topic level, or
    // len + 1 once the topic is exhausted. The only allocations: one level substring per
    // visited node that has literal children (the Map key), and a stack of pending "+"
    // branches, created only when a node has both a matching literal child and a "+" child.
    let pending: (TrieNode<V> | number)[] | undefined;
    let node = this.root;
    let start = 0;
    for (;;) {
      let next: TrieNode<V> | undefined;
      let nextStart = 0;
      if (start > len) {
        emit(node, fn);
        // "#" also matches the parent level: "a/#" matches "a" [MQTT-4.7.1-2].
        if (node.hash !== undefined) emit(node.hash, fn);
      } else {
        // "#" matches this level and everything below it.
        if (node.hash !== undefined && !dollar) emit(node.hash, fn);
        const end = levelEnd(topic, start);
        nextStart = end + 1; // end === len gives len + 1: exhausted
        const plus = dollar ? undefined : node.plus;
        next = node.children?.get(topic.slice(start, end));
        if (next === undefined) next = plus;
        else if (plus !== undefined) (pending ??= []).push(plus, nextStart);
      }
      dollar = false;
      if (next === undefined) {
        if (pending === undefined || pending.length === 0) return;
        nextStart = pending.pop() as number;
        next = pending.pop() as TrieNode<V>;
      }
      node = next;
      start = nextStart;
    }
  }

  /** All stored [filter, value] entries (in no particular order). */
  *entries(): IterableIterator<[string, V]> {
    const stack: TrieNode<V>[] = [this.root];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      if (node.filter !== undefined) yield [node.filter, node.value as V];
      if (node.shared !== undefined) yield* node.shared.entries();
      if (node.hash !== undefined) stack.push(node.hash);
      if (node.plus !== undefined) stack.push(node.plus);
      if (node.children !== undefined)
        for (const child of node.children.values()) stack.push(child);
    }
  }
}

/** A filter without wildcards that is not shared matches exactly one topic: itself. */
function isExact(filter: string): boolean {
  return !hasWildcard(filter) && !isSharedFilter(filter);
}

/**
 * Topic filters with one value each, for routing broker messages. Exact filters (no wildcard)
 * sit in a Map, so a topic that only exact filters match costs one lookup whatever their number;
 * wildcard and shared filters sit in a trie walked level by level, whose cost depends on the
 * topic's levels and the wildcard branches, not on the number of filters. Honors
 * [MQTT-4.7.2-1] ('#' and '+' at the first level never match '$' topics). Do not modify it from
 * inside a match() callback.
 */
export class TopicTrie<V> {
  private readonly exact = new Map<string, V>();
  private readonly tree = new WildcardTree<V>();

  /** Number of filters stored. */
  get size(): number {
    return this.exact.size + this.tree.size;
  }

  /** Adds `filter` with `value`, or replaces the value of an existing filter. */
  set(filter: string, value: V): void {
    if (isExact(filter)) this.exact.set(filter, value);
    else this.tree.set(filter, value);
  }

  /** Returns the value stored for exactly this filter string. */
  get(filter: string): V | undefined {
    return isExact(filter) ? this.exact.get(filter) : this.tree.get(filter);
  }

  /** Removes `filter`; returns whether it was present. */
  delete(filter: string): boolean {
    return isExact(filter) ? this.exact.delete(filter) : this.tree.delete(filter);
  }

  /** Calls `fn` once per stored filter that matches `topic` (a valid topic name). */
  match(topic: string, fn: (value: V, filter: string) => void): void {
    if (this.exact.has(topic)) fn(this.exact.get(topic) as V, topic);
    if (this.tree.size > 0) this.tree.match(topic, fn);
  }

  /** All stored entries. */
  *entries(): IterableIterator<[string, V]> {
    yield* this.exact.entries();
    yield* this.tree.entries();
  }
}
