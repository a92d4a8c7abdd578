import { describe, expect, it } from 'vitest';
import { Db } from '../../../sim/db.js';
import { GroupIndex } from '../../../sim/db-index.js';

describe('sim database indexes', () => {
  it('a group index follows creates, field changes and destroys, with the sum of its members', () => {
    const db = new Db();
    const sr1 = db.create('SR', { name_label: 'a' });
    const early = db.create('VDI', { SR: sr1, virtual_size: 5 });
    const index = new GroupIndex(
      db,
      'VDI',
      (r) => r.SR as string,
      (r) => Number(r.virtual_size),
    );
    const sr2 = db.create('SR', { name_label: 'b' });
    const v1 = db.create('VDI', { SR: sr1, virtual_size: 10 });
    const v2 = db.create('VDI', { SR: sr2, virtual_size: 20 });
    expect(index.refs(sr1)).toEqual([early, v1]);
    expect(index.sum(sr1)).toBe(15);
    db.set('VDI', v1, 'virtual_size', 30);
    expect(index.sum(sr1)).toBe(35);
    db.set('VDI', v1, 'SR', sr2);
    expect(index.refs(sr2)).toEqual([v2, v1]);
    expect([index.sum(sr1), index.sum(sr2)]).toEqual([5, 50]);
    db.destroy('VDI', v2);
    expect(index.refs(sr2)).toEqual([v1]);
    expect(index.sum(sr2)).toBe(30);
    expect(db.get('SR', sr2).VDIs).toEqual([v1]);
  });

  it('changes since a generation: the last change of each object, oldest first, also after compaction', () => {
    const db = new Db();
    const a = db.create('network', { name_label: 'a' });
    const since = db.gen;
    const b = db.create('network', { name_label: 'b' });
    for (let i = 0; i < 3000; i++) db.set('network', a, 'name_label', `a${i}`);
    db.set('network', b, 'name_label', 'b2');
    const seen = [...db.changedSince(since)].map((c) => c.ref);
    expect(seen).toEqual([a, b]);
    expect([...db.changedSince(db.gen)]).toEqual([]);
  });
});
