/**
 * TODO(cluster issue): the 3-node bench of issue 5 — 3 Socket.IO nodes with the Redis adapter
 * (each with its bridge) against 1 node, deliveries/s on the fan-out workload, in both cluster
 * topologies once the cluster issue has landed. Not implemented yet: it needs the cluster feature
 * to be finished and a private redis-server (test/support/redis.ts, never the machine's 6379).
 * The run reports it as "not run" until then.
 */

/** Why the cluster bench is not part of the run yet. */
export const CLUSTER_BENCH_PENDING =
  "not run: the 3-node cluster bench (Redis adapter, 3 nodes vs 1) waits for the cluster issue " +
  "(TODO in bench/cluster.ts)";
