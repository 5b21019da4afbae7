//! Typed access to API keys (`keys/<id>`).

use tessera_auth::key::KeyRecord;

use crate::cfg::{Cfg, Versioned, VersionedList};
use crate::error::Result;
use crate::Revision;

impl Cfg {
    pub async fn api_key(&self, id: &str) -> Result<Option<Versioned<KeyRecord>>> {
        self.get_doc(&self.keys().api_key(id)).await
    }

    pub async fn api_keys(&self) -> Result<VersionedList<KeyRecord>> {
        self.list_docs(&self.keys().api_keys()).await
    }

    /// Writes a key's record under CAS (0: a new key).
    pub async fn put_api_key(&self, key: &KeyRecord, cas: Revision) -> Result<Revision> {
        self.put_doc(&self.keys().api_key(&key.id), key, cas, None)
            .await
    }
}
