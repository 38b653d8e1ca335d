// node-postgres and knex against a Tardigrade SQL listener: schema building,
// hasTable/hasColumn (information_schema), inserts with RETURNING, joins,
// JSONB and NUMERIC values, a transaction with a failing nested one
// (savepoint), and migrate.latest (its lock table and migrations table).
//
//   node knex_smoke.js postgresql://root@host:port/defaultdb
//
// Exits non-zero on the first mismatch.
const assert = require('node:assert/strict');
const knex = require('knex');

async function main(url) {
  const db = knex({ client: 'pg', connection: url, pool: { min: 1, max: 2 } });
  try {
    await db.schema.dropTableIfExists('kx_item');
    await db.schema.dropTableIfExists('kx_owner');
    await db.schema.createTable('kx_owner', (t) => {
      t.increments('id');
      t.string('name').notNullable().unique();
      t.timestamps(true, true);
    });
    await db.schema.createTable('kx_item', (t) => {
      t.increments('id');
      t.integer('owner_id').references('kx_owner.id');
      t.jsonb('meta');
      t.decimal('price', 10, 2);
    });
    assert.equal(await db.schema.hasTable('kx_owner'), true);
    assert.equal(await db.schema.hasTable('kx_nothing'), false);
    assert.equal(await db.schema.hasColumn('kx_item', 'meta'), true);

    const [owner] = await db('kx_owner').insert({ name: 'ann' }).returning('*');
    assert.equal(owner.name, 'ann');
    assert.ok(owner.created_at instanceof Date);
    await db('kx_item').insert([
      { owner_id: owner.id, meta: { a: 1 }, price: '9.99' },
      { owner_id: owner.id, meta: { a: 2 }, price: '1.50' },
    ]);
    const rows = await db('kx_item')
      .join('kx_owner', 'kx_owner.id', 'kx_item.owner_id')
      .select('kx_owner.name', 'kx_item.price', 'kx_item.meta')
      .orderBy('kx_item.price');
    assert.deepEqual(rows, [
      { name: 'ann', price: '1.50', meta: { a: 2 } },
      { name: 'ann', price: '9.99', meta: { a: 1 } },
    ]);

    let nestedCode = null;
    await db.transaction(async (trx) => {
      await trx('kx_item').where('price', '<', 5).update({ price: 2 });
      try {
        await trx.transaction(async (inner) => {
          await inner('kx_owner').insert({ name: 'ann' });
        });
      } catch (e) {
        nestedCode = e.code;
      }
    });
    assert.equal(nestedCode, '23505');
    const [{ s }] = await db('kx_item').sum('price as s');
    assert.equal(s, '11.99');

    for (const t of ['kx_migrated', 'knex_migrations', 'knex_migrations_lock']) {
      await db.schema.dropTableIfExists(t);
    }
    await db.migrate.latest({ directory: __dirname + '/migrations' });
    assert.equal(await db.schema.hasTable('kx_migrated'), true);
    const [, pending] = await db.migrate.list({ directory: __dirname + '/migrations' });
    assert.equal(pending.length, 0);
    await db.migrate.rollback({ directory: __dirname + '/migrations' });
    assert.equal(await db.schema.hasTable('kx_migrated'), false);
  } finally {
    await db.destroy();
  }
  console.log('knex: ok');
}

main(process.argv[2]).catch((e) => {
  console.error(e);
  process.exit(1);
});
