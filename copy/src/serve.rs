//! `tessera.v1.Copy` on a node: takes file sets of the readable copies it holds (or forwards
//! the request to a node that holds one), streams their files, and releases them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use tessera_cfg::Cfg;
use tessera_proto::peers::Peers;
use tessera_proto::v1::copy_server::{Copy, CopyServer};
use tessera_proto::v1::{
    FileChunk, FileEntry, FileSet, ReadFileRequest, ReleaseFileSetRequest, ReleaseFileSetResponse,
    TakeFileSetRequest,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::{Request, Response, Status};

use crate::held::HeldSets;
use crate::pick;
use crate::CopyError;

/// The bytes of one streamed chunk.
const CHUNK: usize = 256 * 1024;

/// What the service needs of its node.
#[derive(Clone)]
pub struct CopyService {
    pub cfg: Cfg,
    pub node: String,
    /// This node's URL, as fetchers are told to reach it.
    pub url: String,
    /// Where the node's PIndex directories are.
    pub pindex_dir: PathBuf,
    pub held: Arc<HeldSets>,
    pub peers: Peers,
}

impl CopyService {
    /// The set `request` asks for, taken here or on the node holding a readable copy.
    pub async fn take(&self, request: TakeFileSetRequest) -> Result<FileSet, CopyError> {
        let index = request.index.as_str();
        let def = self
            .cfg
            .index_def(index)
            .await
            .map_err(CopyError::cfg)?
            .ok_or_else(|| CopyError::NotFound(format!("no index `{index}` in this cluster")))?
            .value;
        let plan = self
            .cfg
            .plan(index)
            .await
            .map_err(CopyError::cfg)?
            .ok_or_else(|| CopyError::NotFound(format!("index `{index}` is not planned yet")))?
            .value;
        let live: BTreeSet<String> = self
            .cfg
            .live_nodes()
            .await
            .map_err(CopyError::cfg)?
            .items
            .into_iter()
            .map(|l| l.value.uuid)
            .collect();
        let holders = pick::holders(&plan, &request.partitions, &live, &self.node).ok_or_else(|| {
            CopyError::NotFound(format!(
                "index `{index}` has no PIndex covering exactly partitions {:?} here (it is partitioned otherwise)",
                request.partitions
            ))
        })?;
        let pindex_dir = self.pindex_dir.join(&holders.pindex);
        let mut last = CopyError::Unavailable(format!(
            "no readable copy of {} is on a live node",
            holders.pindex
        ));
        for node in &holders.nodes {
            if *node == self.node {
                if !pindex_dir.exists() {
                    continue; // readable in the plan, not opened here yet
                }
                let set = self
                    .held
                    .take(&def.index_type, &pindex_dir, request.describe_only)
                    .await?;
                return Ok(FileSet {
                    id: set.id,
                    node: self.node.clone(),
                    url: self.url.clone(),
                    pindex: holders.pindex.clone(),
                    index_uuid: def.uuid.clone(),
                    index_type: def.index_type.clone(),
                    source_name: def.source.name.clone(),
                    params_json: def.params.to_string(),
                    bytes: set.files.iter().map(|f| f.size).sum(),
                    files: set
                        .files
                        .into_iter()
                        .map(|f| FileEntry {
                            name: f.name,
                            size: f.size,
                            crc32: f.crc32,
                        })
                        .collect(),
                    checkpoints_json: tessera_index::checkpoint::encode(&set.checkpoints),
                    docs: set.docs,
                });
            }
            if request.forwarded {
                continue; // forwarded once already: only this node's copy would do
            }
            match self.forward(node, &request).await {
                Ok(set) => return Ok(set),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn forward(
        &self,
        node: &str,
        request: &TakeFileSetRequest,
    ) -> Result<FileSet, CopyError> {
        let def = self
            .cfg
            .node_def(node)
            .await
            .map_err(CopyError::cfg)?
            .ok_or_else(|| CopyError::Unavailable(format!("node {node} is not defined")))?;
        let mut client = self
            .peers
            .copy(&def.value.host_port)
            .map_err(CopyError::Transport)?;
        let forwarded = TakeFileSetRequest {
            forwarded: true,
            ..request.clone()
        };
        match tokio::time::timeout(crate::fetch::TAKE_TIMEOUT, client.take_file_set(forwarded))
            .await
        {
            Ok(answer) => answer
                .map(|r| r.into_inner())
                .map_err(CopyError::from_status),
            Err(_) => Err(CopyError::Transport(format!(
                "node {node} did not answer within {} s",
                crate::fetch::TAKE_TIMEOUT.as_secs()
            ))),
        }
    }
}

#[tonic::async_trait]
impl Copy for CopyService {
    async fn take_file_set(
        &self,
        request: Request<TakeFileSetRequest>,
    ) -> Result<Response<FileSet>, Status> {
        self.take(request.into_inner())
            .await
            .map(Response::new)
            .map_err(CopyError::into_status)
    }

    type ReadFileStream = tokio_stream::wrappers::ReceiverStream<Result<FileChunk, Status>>;

    async fn read_file(
        &self,
        request: Request<ReadFileRequest>,
    ) -> Result<Response<Self::ReadFileStream>, Status> {
        let r = request.into_inner();
        let (path, size) = self
            .held
            .file(&r.set_id, &r.name)
            .map_err(CopyError::into_status)?;
        if r.offset > size {
            return Err(Status::out_of_range(format!(
                "offset {} is past the end of {} ({size} bytes)",
                r.offset, r.name
            )));
        }
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| CopyError::io(&path, e).into_status())?;
        file.seek(std::io::SeekFrom::Start(r.offset))
            .await
            .map_err(|e| CopyError::io(&path, e).into_status())?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let held = self.held.clone();
        tokio::spawn(async move {
            let mut left = size - r.offset;
            while left > 0 {
                let mut buf = vec![0u8; CHUNK.min(left as usize)];
                let sent = match file.read_exact(&mut buf).await {
                    Ok(_) => {
                        left -= buf.len() as u64;
                        tx.send(Ok(FileChunk { data: buf })).await
                    }
                    Err(e) => {
                        let e = CopyError::io(&path, e).into_status();
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if sent.is_err() {
                    return; // the fetcher went away; it resumes from its offset
                }
                held.touch(&r.set_id);
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn release_file_set(
        &self,
        request: Request<ReleaseFileSetRequest>,
    ) -> Result<Response<ReleaseFileSetResponse>, Status> {
        self.held.release(&request.into_inner().set_id);
        Ok(Response::new(ReleaseFileSetResponse {}))
    }
}

/// The service as an axum router without a fallback, to merge with the node's others.
pub fn router(service: CopyService) -> axum::Router {
    use tonic::server::NamedService;
    let path = format!("/{}/{{*method}}", CopyServer::<CopyService>::NAME);
    axum::Router::new().route_service(&path, CopyServer::new(service))
}
