// A conformance-contract implementation in Node.js (no dependencies), speaking
// taskward's JSON-lines protocol: one request per line on stdin, one reply per
// line on stdout.
//
//   taskward check --impl 'node examples/node-impl/impl.js'
//
// Broker and election follow CONFORMANCE.md's deterministic rules directly.
"use strict";
const readline = require("readline");

class Rejected extends Error {}

class Impl {
  constructor(c) {
    this.c = c;
    this.workers = c.workers.slice();
    this.nodes = new Set(c.nodes);
    this.perWorker = c.policy !== "shared";
    this.now = 0;
    this.seen = new Map(this.workers.map((w) => [w, 0]));
    this.cursor = 0;
    this.tasks = new Map(); // id -> {seq, priority, state, owner, expiry, deliveries}
    this.nextSeq = 0;
    this.dead = [];
    this.members = new Map();
    this.holder = null;
    this.leaseEnd = 0;
    this.epoch = 0;
    this.beliefs = new Map(); // node -> [grantedAt, epoch]
  }
  capabilities() {
    return ["broker", "leases", "priority", "shared", "round_robin", "work_stealing",
      "restart", "election"];
  }
  worker(w) { if (!this.seen.has(w)) throw new Rejected(`unknown worker ${w}`); return w; }
  node(n) { if (!this.nodes.has(n)) throw new Rejected(`unknown node ${n}`); return n; }
  live(w) { return this.now - this.seen.get(w) < this.c.worker_timeout_ms; }
  assign() {
    const n = this.workers.length;
    for (let step = 0; step < n; step++) {
      const i = (this.cursor + step) % n;
      if (this.live(this.workers[i])) { this.cursor = (i + 1) % n; return this.workers[i]; }
    }
    return null;
  }
  bySeq() { return [...this.tasks.entries()].sort((a, b) => a[1].seq - b[1].seq); }
  prelude(worker) {
    if (worker !== null) this.seen.set(worker, this.now);
    for (const [id, t] of this.bySeq()) {
      if (t.state === "LEASED" && t.expiry <= this.now) {
        if (t.deliveries >= this.c.max_deliveries) { t.state = "DEAD"; t.owner = null; this.dead.push(id); }
        else t.state = "READY";
      }
    }
    if (this.perWorker) {
      for (const [, t] of this.bySeq()) {
        if (t.state === "READY" && (t.owner === null || !this.live(t.owner))) t.owner = this.assign();
      }
    }
  }
  best(pool) {
    let best = null;
    for (const [id, t] of pool) {
      if (best === null || t.priority > best[1].priority ||
          (t.priority === best[1].priority && t.seq < best[1].seq)) best = [id, t];
    }
    return best === null ? null : best[0];
  }
  readyOf(w) {
    return [...this.tasks.entries()].filter(([, t]) => t.state === "READY" && (w === null || t.owner === w));
  }
  choose(worker) {
    if (!this.perWorker) return this.best(this.readyOf(null));
    const own = this.best(this.readyOf(worker));
    if (own !== null || this.c.policy === "round_robin") return own;
    let victim = null, most = 0;
    for (const w of [...this.workers].sort()) {
      if (w === worker) continue;
      const n = this.readyOf(w).length;
      if (n > most) { victim = w; most = n; }
    }
    return victim === null ? null : this.best(this.readyOf(victim));
  }
  held(worker, id) {
    const t = this.tasks.get(id);
    if (!t || t.state !== "LEASED" || t.owner !== worker || t.expiry <= this.now) {
      throw new Rejected(`${worker} does not hold ${id}`);
    }
    return t;
  }
  publish(id, priority) {
    this.prelude(null);
    if (this.tasks.has(id)) throw new Rejected(`task_id ${id} reused`);
    const t = { seq: ++this.nextSeq, priority, state: "READY", owner: null, expiry: 0, deliveries: 0 };
    this.tasks.set(id, t);
    if (this.perWorker) t.owner = this.assign();
    return null;
  }
  fetch(worker) {
    this.prelude(this.worker(worker));
    const id = this.choose(worker);
    if (id === null) return null;
    const t = this.tasks.get(id);
    Object.assign(t, { state: "LEASED", owner: worker, expiry: this.now + this.c.lease_ms });
    t.deliveries += 1;
    return id;
  }
  ack(worker, id) {
    this.prelude(this.worker(worker));
    Object.assign(this.held(worker, id), { state: "ACKED", owner: null });
    return null;
  }
  nack(worker, id, requeue) {
    this.prelude(this.worker(worker));
    const t = this.held(worker, id);
    if (!requeue || t.deliveries >= this.c.max_deliveries) {
      t.state = "DEAD"; t.owner = null; this.dead.push(id);
    } else { t.state = "READY"; t.owner = worker; }
    return null;
  }
  extend(worker, id) {
    this.prelude(this.worker(worker));
    this.held(worker, id).expiry = this.now + this.c.lease_ms;
    return null;
  }
  heartbeat(worker) { this.prelude(this.worker(worker)); return null; }
  dead_letters() { this.prelude(null); return this.dead.slice(); }
  advance(ms) { this.now += ms; return null; }
  restart() { return null; } // all state is kept: a restart changes nothing observable
  tick(node) {
    this.members.set(this.node(node), this.now);
    let smaller = false;
    for (const [m, t] of this.members) {
      if (m < node && this.now - t < this.c.member_timeout_ms) smaller = true;
    }
    const held = this.holder !== null && this.now < this.leaseEnd;
    const lease = this.c.election_lease_ms;
    if (held && this.holder === node) {
      if (smaller) { this.holder = null; this.beliefs.delete(node); }
      else { this.leaseEnd = this.now + lease; this.beliefs.set(node, [this.now, this.epoch]); }
    } else if (!held && !smaller) {
      this.epoch += 1;
      this.holder = node; this.leaseEnd = this.now + lease;
      this.beliefs.set(node, [this.now, this.epoch]);
    }
    return null;
  }
  is_leader(node) {
    const b = this.beliefs.get(this.node(node));
    if (b && this.now < b[0] + this.c.election_lease_ms) return [true, b[1]];
    return [false, null];
  }
  leader_write(node, epoch, value) {
    this.node(node);
    return epoch === this.epoch && this.holder === node && this.now < this.leaseEnd;
  }
  close() { return null; }
}

const ARGS = {
  publish: ["task_id", "priority"], fetch: ["worker"], ack: ["worker", "task_id"],
  nack: ["worker", "task_id", "requeue"], extend: ["worker", "task_id"], heartbeat: ["worker"],
  dead_letters: [], advance: ["ms"], restart: [], tick: ["node"], is_leader: ["node"],
  leader_write: ["node", "epoch", "value"], close: [],
};

let impl = null;
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const req = JSON.parse(line);
  let reply;
  if (req.op === "init") {
    impl = new Impl(req.args);
    reply = { id: req.id, ok: true, capabilities: impl.capabilities() };
  } else if (!(req.op in ARGS)) {
    reply = { id: req.id, ok: false, error: `unknown op ${req.op}`, definite: true };
  } else {
    try {
      const args = ARGS[req.op].map((k) => (req.args || {})[k]);
      reply = { id: req.id, ok: true, result: impl[req.op](...args) };
    } catch (e) {
      reply = { id: req.id, ok: false, error: String(e.message), definite: true };
    }
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
  if (req.op === "close") rl.close();
});
