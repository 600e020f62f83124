//! The lease store: SQLite in WAL mode with `synchronous=FULL`, so a committed lease survives
//! a crash or power loss. The DHCP shell commits every ACK's [`Change`]s here, batched with
//! whatever else arrived meanwhile (group commit), before the ACK is sent.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use crate::leases::{Change, ClientId, Lease, State};
use crate::mac::Mac;

/// A lease store failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The state directory could not be created.
    #[error("cannot create state dir {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        source: std::io::Error,
    },
    /// SQLite refused an operation.
    #[error("lease store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A row that does not decode (edited by hand, or from a future version).
    #[error("lease store {path}: bad row for client {client}: {what}")]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// The row's client id, hex.
        client: String,
        /// What is wrong.
        what: String,
    },
}

/// An open lease database.
pub(crate) struct LeaseStore {
    /// The connection; only the DHCP commit task uses it.
    conn: Connection,
    /// `state_dir/leases.db`, for messages.
    path: PathBuf,
}

impl std::fmt::Debug for LeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStore")
            .field("path", &self.path)
            .finish()
    }
}

impl LeaseStore {
    /// Opens (creating if needed) `state_dir/leases.db`.
    pub(crate) fn open(state_dir: &Path) -> Result<LeaseStore, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Dir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join("leases.db");
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        // The admin API opens a second connection for its own writes.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS leases (
                 client_id BLOB PRIMARY KEY,
                 mac TEXT NOT NULL,
                 ip TEXT NOT NULL UNIQUE,
                 state INTEGER NOT NULL,
                 expires INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )
        .map_err(sql)?;
        Ok(LeaseStore { conn, path })
    }

    /// The file behind the store.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored lease.
    pub(crate) fn load(&self) -> Result<Vec<Lease>, StoreError> {
        let sql = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let mut stmt = self
            .conn
            .prepare("SELECT client_id, mac, ip, state, expires FROM leases")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (client, mac, ip, state, expires) = row.map_err(sql)?;
            let client = ClientId(client);
            let bad = |what: String| StoreError::BadRow {
                path: self.path.clone(),
                client: client.hex(),
                what,
            };
            let mac: Mac = mac.parse().map_err(|e| bad(format!("{e}")))?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad(format!("ip `{ip}`")))?;
            let state = State::from_code(state).ok_or_else(|| bad(format!("state {state}")))?;
            out.push(Lease {
                client,
                mac,
                ip,
                state,
                expires: expires.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Applies `changes` in one transaction; when this returns `Ok`, they are on disk.
    pub(crate) fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut upsert = tx
                .prepare_cached("INSERT OR REPLACE INTO leases (client_id, mac, ip, state, expires) VALUES (?1, ?2, ?3, ?4, ?5)")
                .map_err(sql)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM leases WHERE client_id = ?1")
                .map_err(sql)?;
            for c in changes {
                match c {
                    Change::Upsert(l) => {
                        upsert
                            .execute(params![
                                l.client.0,
                                l.mac.to_string(),
                                l.ip.to_string(),
                                l.state.code(),
                                l.expires as i64
                            ])
                            .map_err(sql)?;
                    }
                    Change::Delete(client) => {
                        delete.execute(params![client.0]).map_err(sql)?;
                    }
                }
            }
        }
        tx.commit().map_err(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(n: u8, ip: u8, state: State) -> Lease {
        let mac = Mac([2, 0, 0, 0, 0, n]);
        Lease {
            client: ClientId::from_mac(mac),
            mac,
            ip: Ipv4Addr::new(10, 0, 0, ip),
            state,
            expires: 1000 + u64::from(n),
        }
    }

    #[test]
    fn committed_leases_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LeaseStore::open(&dir.path().join("state")).unwrap();
        s.commit(&[
            Change::Upsert(lease(1, 10, State::Bound)),
            Change::Upsert(lease(2, 11, State::Bound)),
        ])
        .unwrap();
        // Client 3 takes over client 1's address: delete and upsert in one commit.
        s.commit(&[
            Change::Delete(lease(1, 10, State::Bound).client),
            Change::Upsert(lease(3, 10, State::Bound)),
        ])
        .unwrap();
        s.commit(&[Change::Upsert(lease(2, 11, State::Released))])
            .unwrap();
        drop(s);
        let s = LeaseStore::open(&dir.path().join("state")).unwrap();
        let mut got = s.load().unwrap();
        got.sort_by_key(|l| l.mac);
        assert_eq!(
            got,
            vec![lease(2, 11, State::Released), lease(3, 10, State::Bound)]
        );
    }

    #[test]
    fn wal_and_full_sync_are_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let s = LeaseStore::open(dir.path()).unwrap();
        let mode: String = s
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = s
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }
}
