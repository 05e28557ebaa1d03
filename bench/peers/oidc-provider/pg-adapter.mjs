// An oidc-provider adapter on PostgreSQL (node-postgres), for the peer's PostgreSQL row in
// bench/identity.py; used by server.mjs when its config has a `database_url`.
//
// In the spirit of oidc-provider's example adapters: one table for every model, keyed by
// (id, type), the payload as jsonb, and the columns the secondary lookups need (grant id,
// user code, session uid) indexed. find() ignores expired rows; consume() stamps
// consumed_at, which find() hands back as payload.consumed (how oidc-provider detects a
// code used twice); upsert() leaves consumed_at as it was. Expired rows are not swept:
// the benchmark's database lives for one run. One pg.Pool of 20 connections that are
// kept open while idle; each query is a named prepared statement.
import pg from 'pg';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS oidc_payload (
  id text NOT NULL,
  type text NOT NULL,
  payload jsonb NOT NULL,
  grant_id text,
  user_code text,
  uid text,
  expires_at timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (id, type)
);
CREATE INDEX IF NOT EXISTS oidc_payload_grant_id ON oidc_payload (grant_id);
CREATE INDEX IF NOT EXISTS oidc_payload_user_code ON oidc_payload (user_code);
CREATE INDEX IF NOT EXISTS oidc_payload_uid ON oidc_payload (uid);
`;

const LIVE = '(expires_at IS NULL OR expires_at > now())';
const SELECT = `SELECT payload, floor(extract(epoch FROM consumed_at))::int AS consumed
  FROM oidc_payload`;

const SQL = {
  upsert: `INSERT INTO oidc_payload (id, type, payload, grant_id, user_code, uid, expires_at)
    VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
    ON CONFLICT (id, type) DO UPDATE SET payload = excluded.payload,
      grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid,
      expires_at = excluded.expires_at`,
  find: `${SELECT} WHERE id = $1 AND type = $2 AND ${LIVE}`,
  findByUid: `${SELECT} WHERE uid = $1 AND type = $2 AND ${LIVE} LIMIT 1`,
  findByUserCode: `${SELECT} WHERE user_code = $1 AND type = $2 AND ${LIVE} LIMIT 1`,
  consume: 'UPDATE oidc_payload SET consumed_at = now() WHERE id = $1 AND type = $2',
  destroy: 'DELETE FROM oidc_payload WHERE id = $1 AND type = $2',
  revokeByGrantId: 'DELETE FROM oidc_payload WHERE grant_id = $1 AND type = $2',
};

function payloadOf(rows) {
  const row = rows[0];
  if (!row) return undefined;
  return row.consumed === null ? row.payload : { ...row.payload, consumed: row.consumed };
}

// The adapter class for Provider's `adapter` option, after the table exists.
export async function createPgAdapter(connectionString) {
  const pool = new pg.Pool({ connectionString, max: 20, idleTimeoutMillis: 0 });
  await pool.query(SCHEMA);

  const run = (name, values) => pool.query({ name: `oidc_${name}`, text: SQL[name], values });

  class PgAdapter {
    constructor(name) {
      this.name = name;
    }

    async upsert(id, payload, expiresIn) {
      const expiresAt =
        typeof expiresIn === 'number' ? new Date(Date.now() + expiresIn * 1000) : null;
      await run('upsert', [
        id,
        this.name,
        JSON.stringify(payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        payload.uid ?? null,
        expiresAt,
      ]);
    }

    async find(id) {
      return payloadOf((await run('find', [id, this.name])).rows);
    }

    async findByUid(uid) {
      return payloadOf((await run('findByUid', [uid, this.name])).rows);
    }

    async findByUserCode(userCode) {
      return payloadOf((await run('findByUserCode', [userCode, this.name])).rows);
    }

    async consume(id) {
      await run('consume', [id, this.name]);
    }

    async destroy(id) {
      await run('destroy', [id, this.name]);
    }

    async revokeByGrantId(grantId) {
      await run('revokeByGrantId', [grantId, this.name]);
    }
  }

  return { PgAdapter, close: () => pool.end() };
}
