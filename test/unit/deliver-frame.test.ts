import { expect } from "chai";
import { checkFrame, encodeFrame } from "../../lib/cluster/deliver";
import type { BridgeMessage } from "../../lib/protocol";

/** A frame as the Redis adapter carries it: through JSON. */
const overJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

function roundTrip(messages: BridgeMessage[]): BridgeMessage[] | undefined {
  const frame = encodeFrame(
    new Set(["r1", "r2"]),
    ["origin"],
    messages,
    messages.map(() => 10),
  );
  const got = checkFrame(overJson(frame), 256);
  expect(got, "a well-formed frame").to.not.equal(undefined);
  expect([...got!.rooms]).to.deep.equal(["r1", "r2"]);
  expect(got!.except).to.deep.equal(["origin"]);
  return got!.messages();
}

describe("the worker's delivery frames (lib/cluster/deliver.ts)", () => {
  it("carries JSON, text and binary payloads, nested binary, properties and correlation data through JSON", () => {
    const messages: BridgeMessage[] = [
      { topic: "a", payload: { t: 21.5, list: [1, "x", null] }, qos: 0, retain: false },
      { topic: "b", payload: "text", qos: 1, retain: true },
      { topic: "c", payload: Buffer.from([0, 1, 2, 255]), qos: 2, retain: false },
      {
        topic: "d",
        payload: { raw: new Uint8Array([9, 8]), deep: [{ b: Buffer.from("hi") }] },
        qos: 0,
        retain: false,
      },
      {
        topic: "e",
        payload: null,
        qos: 0,
        retain: false,
        properties: {
          contentType: "application/json",
          correlationData: Buffer.from([7, 7]),
          userProperties: { k: "v" },
        },
      },
      // an object that looks like a tagged value is left alone where nothing was tagged
      { topic: "f", payload: { $b64: "AAAA" }, qos: 0, retain: false },
    ];
    const got = roundTrip(messages)!;
    expect(got).to.have.length(messages.length);
    expect(got[0]).to.deep.equal(messages[0]);
    expect(got[1]).to.deep.equal(messages[1]);
    expect(Buffer.isBuffer(got[2].payload)).to.equal(true);
    expect([...(got[2].payload as Buffer)]).to.deep.equal([0, 1, 2, 255]);
    const d = got[3].payload as { raw: Buffer; deep: { b: Buffer }[] };
    expect([...d.raw]).to.deep.equal([9, 8]);
    expect(d.deep[0].b.toString()).to.equal("hi");
    expect(got[4].properties?.contentType).to.equal("application/json");
    expect([...(got[4].properties?.correlationData as Buffer)]).to.deep.equal([7, 7]);
    expect(got[4].properties?.userProperties).to.deep.equal({ k: "v" });
    expect(got[5]).to.deep.equal(messages[5]);
    for (const m of got) expect(m).to.not.have.any.keys("b", "c");
  });

  it("carries the stream position of numbered messages: the frame's and each message's", () => {
    const messages: BridgeMessage[] = [1, 2].map((offset) => ({
      ...{ topic: "t", payload: offset, qos: 0, retain: false },
      ...{ offset, epoch: "e1" },
    }));
    const frame = checkFrame(overJson(encodeFrame(new Set(["r"]), [], messages, [5, 5], "e1")), 2);
    expect(frame).to.include({ epoch: "e1", last: 2 });
    expect(frame!.messages()).to.deep.equal(messages);
  });

  it("refuses malformed frames and message lists", () => {
    const good = overJson(
      encodeFrame(new Set(["r"]), [], [{ topic: "t", payload: 1, qos: 0, retain: false }], [5]),
    ) as Record<string, unknown>;
    expect(checkFrame(good, 1)).to.not.equal(undefined);
    for (const bad of [
      null,
      "x",
      { ...good, rooms: [] },
      { ...good, rooms: [1] },
      { ...good, except: "x" },
      { ...good, body: 3 },
      { ...good, sizes: [] },
      { ...good, sizes: [-1] },
      { ...good, sizes: [1, 2] }, // more than the limit of 1
    ]) {
      expect(checkFrame(bad, 1), JSON.stringify(bad)).to.equal(undefined);
    }
    const bodies = [
      "not json",
      "{}",
      "[]", // one size, no message
      '[{"topic":1,"payload":0,"qos":0,"retain":false}]',
      '[{"topic":"t","payload":0,"qos":3,"retain":false}]',
      '[{"topic":"t","payload":0,"qos":0,"retain":"no"}]',
      '[{"topic":"t","payload":5,"qos":0,"retain":false,"b":1}]',
      '[{"topic":"t","payload":0,"qos":0,"retain":false,"offset":0}]',
      '[{"topic":"t","payload":0,"qos":0,"retain":false,"offset":1,"epoch":""}]',
      '[{"topic":"t","payload":0,"qos":0,"retain":false,"offset":1,"epoch":7}]',
    ];
    for (const body of bodies) {
      const frame = checkFrame({ ...good, body }, 1);
      expect(frame?.messages(), body).to.equal(undefined);
    }
  });
});
