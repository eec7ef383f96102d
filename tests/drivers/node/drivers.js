// drivers.js: node-postgres (pg) and postgres.js through tidepool, for
// tests/integration/test_drivers_node.py.
//
// usage: node drivers.js HOST PORT DATABASE USER PASSWORD CLIENTS ITERATIONS
//
// pg:        CLIENTS pg.Client connections at once, each running named
//            prepared statements ({name, text, values}) ITERATIONS times:
//            'q1' (the same text in every client), 'own' (the same name, a
//            different text in each client), named INSERT / SELECT inside
//            BEGIN ... COMMIT, a rolled-back transaction; then a pg.Pool of 4
//            connections shared by 8 tasks doing the same.
// postgres:  postgres.js (prepares every parameterised query by default,
//            and pipelines them) with max 4 connections and 8 concurrent
//            tasks: parameterised SELECTs, sql.begin() transactions, a
//            rolled-back one.
//
// Prints one line per part: `RESULT {"driver": ..., "rows": N, "pidSets": [[pid, ...], ...]}`
// and `OK` last; exits 0. On a failure prints the error and exits 1; after
// 45 s exits 2.

'use strict'

const pg = require('pg')
const postgres = require('postgres')

const [host, port, database, user, password, clientsArg, iterationsArg] = process.argv.slice(2)
const CLIENTS = Number(clientsArg)
const ITERATIONS = Number(iterationsArg)

setTimeout(() => {
  console.error('drivers.js: still running after 45 s')
  process.exit(2)
}, 45000).unref()

function check (cond, what) {
  if (!cond) throw new Error('check failed: ' + what)
}

// -- node-postgres --

// Client i's work, iterations k = from .. from + iterations - 1; `rows` of
// its rows are in the table already. ownName: the name of its own statement
// ('own' in every client; in a pg.Pool, where tasks share connections, one
// per task, since a connection refuses one name for two texts).
async function pgWork (client, i, tag, iterations, from = 0, rows = 0, ownName = 'own') {
  const pids = new Set()
  const start = rows
  for (let k = from; k < from + iterations; k++) {
    let r = await client.query({ name: 'q1', text: 'SELECT $1::int + 1 AS v', values: [k] })
    check(r.rows[0].v === k + 1, `q1 gave ${r.rows[0].v} for ${k}`)
    r = await client.query({ name: ownName, text: `SELECT $1::int * ${i + 2} AS v`, values: [k] })
    check(r.rows[0].v === k * (i + 2), `client ${i}: own gave ${r.rows[0].v} for ${k}`)

    await client.query('BEGIN')
    await client.query({
      name: 'ins',
      text: 'INSERT INTO node_items (driver, client, k, label) VALUES ($1, $2, $3, $4)',
      values: [tag, i, k, 'kept']
    })
    r = await client.query({
      name: 'count',
      text: 'SELECT count(*)::int AS n FROM node_items WHERE driver = $1 AND client = $2 AND label = $3',
      values: [tag, i, 'kept']
    })
    check(r.rows[0].n === rows + 1, `client ${i}: ${r.rows[0].n} rows, expected ${rows + 1}`)
    const pid = (await client.query({ name: 'pid', text: 'SELECT pg_backend_pid() AS pid' })).rows[0].pid
    const again = (await client.query({ name: 'pid', text: 'SELECT pg_backend_pid() AS pid' })).rows[0].pid
    check(pid === again, 'one backend for the whole transaction')
    pids.add(pid)
    await client.query('COMMIT')
    rows++

    if (k % 5 === 4) {
      await client.query('BEGIN')
      await client.query({
        name: 'ins',
        text: 'INSERT INTO node_items (driver, client, k, label) VALUES ($1, $2, $3, $4)',
        values: [tag, i, k, 'rolled back']
      })
      await client.query('ROLLBACK')
    }
  }
  return { pids, rows: rows - start }
}

async function runPg () {
  const config = { host, port: Number(port), database, user, password, connectionTimeoutMillis: 10000 }
  const clients = []
  for (let i = 0; i < CLIENTS; i++) {
    const c = new pg.Client(config)
    await c.connect()
    clients.push(c)
  }
  const results = await Promise.all(clients.map((c, i) => pgWork(c, i, 'pg', ITERATIONS)))
  await Promise.all(clients.map(c => c.end()))

  // pg.Pool: 4 connections, 8 tasks; a task gets whichever connection is
  // free, and each connection prepares a name once.
  const pool = new pg.Pool({ ...config, max: 4 })
  const poolResults = await Promise.all([...Array(8).keys()].map(async i => {
    const pids = new Set()
    let rows = 0
    for (let k = 0; k < ITERATIONS / 2; k++) {
      const client = await pool.connect()
      try {
        const r = await pgWork(client, i, 'pg-pool', 1, k, rows, `own${i}`)
        r.pids.forEach(p => pids.add(p))
        rows += r.rows
      } finally {
        client.release()
      }
    }
    return { pids, rows }
  }))
  await pool.end()
  return [
    { driver: 'pg', rows: results.reduce((a, r) => a + r.rows, 0), pidSets: results.map(r => [...r.pids]) },
    { driver: 'pg-pool', rows: poolResults.reduce((a, r) => a + r.rows, 0), pidSets: poolResults.map(r => [...r.pids]) }
  ]
}

// -- postgres.js --

async function runPostgresJs () {
  const sql = postgres({
    host,
    port: Number(port),
    database,
    username: user,
    password,
    max: 4,
    connect_timeout: 10,
    idle_timeout: 0,
    onnotice: () => {}
  })
  try {
    const results = await Promise.all([...Array(8).keys()].map(async i => {
      const pids = new Set()
      let rows = 0
      for (let k = 0; k < ITERATIONS; k++) {
        const [{ v }] = await sql`SELECT ${k}::int + ${i}::int AS v`
        check(v === k + i, `task ${i}: ${v}`)
        const names = await sql`SELECT ${'t' + i}::text || g::text AS s FROM generate_series(1, ${(k % 5) + 1}::int) g`
        check(names.length === (k % 5) + 1 && names[0].s === `t${i}1`, `task ${i}: ${JSON.stringify(names)}`)
        const pid = await sql.begin(async tx => {
          await tx`INSERT INTO node_items (driver, client, k, label) VALUES ('postgres', ${i}, ${k}, 'kept')`
          const [{ n }] = await tx`SELECT count(*)::int AS n FROM node_items WHERE driver = 'postgres' AND client = ${i} AND label = 'kept'`
          check(n === rows + 1, `task ${i}: ${n} rows, expected ${rows + 1}`)
          const [{ pid }] = await tx`SELECT pg_backend_pid() AS pid`
          const [{ pid: again }] = await tx`SELECT pg_backend_pid() AS pid`
          check(pid === again, 'one backend for the whole transaction')
          return pid
        })
        rows++
        pids.add(pid)
        if (k % 5 === 4) {
          await sql.begin(async tx => {
            await tx`INSERT INTO node_items (driver, client, k, label) VALUES ('postgres', ${i}, ${k}, 'rolled back')`
            throw new Error('roll back')
          }).catch(e => { if (e.message !== 'roll back') throw e })
        }
      }
      return { pids, rows }
    }))
    return [{ driver: 'postgres', rows: results.reduce((a, r) => a + r.rows, 0), pidSets: results.map(r => [...r.pids]) }]
  } finally {
    await sql.end({ timeout: 5 })
  }
}

async function main () {
  const out = [...await runPg(), ...await runPostgresJs()]
  for (const r of out) console.log('RESULT ' + JSON.stringify(r))
  console.log('OK')
}

main().then(() => process.exit(0), e => {
  console.error('drivers.js failed:', e && e.stack ? e.stack : e)
  if (e && e.code) console.error('SQLSTATE', e.code)
  process.exit(1)
})
