import { expect } from "chai";
import { RoomViews } from "../../lib/cluster/views";

/** A subscription table that keeps reference counts per `room filter`. */
function table() {
  const refs = new Map<string, number>();
  return {
    refs,
    acquire: (filter: string, room: string) =>
      refs.set(`${room} ${filter}`, (refs.get(`${room} ${filter}`) ?? 0) + 1),
    release: (filter: string, room: string) => {
      const n = (refs.get(`${room} ${filter}`) ?? 0) - 1;
      if (n > 0) refs.set(`${room} ${filter}`, n);
      else refs.delete(`${room} ${filter}`);
    },
    upgrade: () => undefined,
  };
}

describe("the worker's views of the nodes' rooms", () => {
  it("applies a snapshot for what it covers when newer reports got there first", () => {
    const t = table();
    let repaired = 0;
    const views = new RoomViews(t, (n) => (repaired += n));
    views.report("n", 1, [["+", "r1", "a", 0]]);
    views.report("n", 2, [["+", "r2", "b", 0]]);
    // report 3 is lost: it removed r1/a
    views.report("n", 4, [["+", "r3", "c", 0]]); // newer than the snapshot below
    views.report("n", 5, [["-", "r2", "b"]]); // newer than the snapshot below
    views.snapshot("n", 3, [["r2", ["b"]]]); // as of change 3: r1/a gone, r2/b there
    expect([...t.refs.keys()].sort()).to.deep.equal(["r3 c"]);
    expect(repaired).to.equal(1); // r1/a
    // a snapshot older than one applied changes nothing
    views.snapshot("n", 2, [
      ["r1", ["a"]],
      ["r2", ["b"]],
    ]);
    expect([...t.refs.keys()]).to.deep.equal(["r3 c"]);
    // change 6 (+r4/d) is lost too; the next snapshot repairs it, later reports apply
    views.snapshot("n", 6, [
      ["r3", ["c"]],
      ["r4", ["d"]],
    ]);
    views.report("n", 6, [["+", "r4", "d", 0]]); // a report the snapshot covers: ignored
    views.report("n", 7, [["-", "r3", "c"]]);
    expect([...t.refs.keys()]).to.deep.equal(["r4 d"]);
    expect(repaired).to.equal(2);
  });

  it("loads the first snapshot of a node met late without counting a repair, and drops gone nodes", () => {
    const t = table();
    let repaired = 0;
    const views = new RoomViews(t, (n) => (repaired += n));
    views.report("late", 40, [["+", "r", "a", 0]]);
    views.snapshot("late", 40, [
      ["r", ["a"]],
      ["s", ["b"]],
    ]);
    views.report("other", 1, [["+", "r", "a", 0]]);
    expect(repaired).to.equal(0);
    expect(t.refs.get("r a")).to.equal(2);
    views.keepOnly(new Set(["other"]));
    expect([...t.refs]).to.deep.equal([["r a", 1]]);
  });
});
