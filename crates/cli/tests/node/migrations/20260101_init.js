// A knex migration: what `knex migrate:latest` runs.
exports.up = (knex) =>
  knex.schema.createTable('kx_migrated', (t) => {
    t.bigIncrements('id');
    t.text('body');
  });
exports.down = (knex) => knex.schema.dropTable('kx_migrated');
