//! Talking to a Qdrant server (a single node or a cluster) with the official `qdrant-client`
//! crate over gRPC: `sync` and the legs of a search.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance,
    Fusion, MultiVectorComparator, MultiVectorConfig, PayloadIncludeSelector, PointId, PointStruct,
    PointVectors, PrefetchQueryBuilder, Query, QueryBatchPointsBuilder, QueryPoints,
    QueryPointsBuilder, Rrf, ScoredPoint, ScrollPointsBuilder, SearchParamsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpdateCollectionBuilder,
    UpdatePointVectorsBuilder, UpsertPointsBuilder, Value, VectorInput, VectorParamsBuilder,
    VectorsConfigBuilder, point_id::PointIdOptions, value::Kind, vectors_config::Config,
};
use serde::Serialize;

use hybrid_search::sparse::SparseVector;
use hybrid_search::{Collection, IdList, LegLists, LegQuery, Legs, Snapshot};

use crate::error::{Error, Result};
use crate::filter::{FIELDS_KEY, QdrantFilter, index_type, payload_key};
use crate::fusion::{ServerFusion, explain};
use crate::points::{
    CollectionSpec, DENSE_VECTOR, DIGEST, DOC_ID, METADATA_KEY, Point, SPARSE_VECTOR,
};

/// The RRF constant Qdrant is given for the engine's `k` = 60: Qdrant counts ranks from 0,
/// the engine (and Cormack et al.) from 1.
pub const QDRANT_RRF_K: u32 = 61;

/// A Qdrant server and a collection on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The gRPC URL (`http://127.0.0.1:6334`).
    pub url: String,
    /// The collection's name.
    pub collection: String,
}

impl Target {
    /// `Qdrant at URL, collection "NAME"`, for messages.
    pub fn describe(&self) -> String {
        format!("Qdrant at {}, collection {:?}", self.url, self.collection)
    }
}

/// A connection to a Qdrant server.
pub struct Client {
    target: Target,
    client: Qdrant,
    runtime: tokio::runtime::Runtime,
}

/// What the server holds for a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCollection {
    /// The spec `sync` last stored (absent before the first complete sync).
    pub spec: Option<CollectionSpec>,
    /// The named dense vector's size and distance, and whether it is a multivector.
    pub dense: Option<(u64, String, bool)>,
    /// Whether the named sparse vector exists.
    pub sparse: bool,
    /// Points stored.
    pub points: u64,
    /// Shards.
    pub shards: u32,
    /// Replication factor.
    pub replicas: u32,
}

impl Client {
    /// Connects to `target` and checks that the server answers.
    ///
    /// # Errors
    ///
    /// [`Error::Qdrant`] when the URL is not valid or the server does not answer.
    pub fn connect(target: Target) -> Result<Self> {
        let fail = |message: String| Error::Qdrant {
            backend: target.describe(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(format!("could not start the client's runtime: {e}")))?;
        let client = Qdrant::from_url(&target.url)
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            .skip_compatibility_check()
            .build()
            .map_err(|e| fail(format!("not a usable URL: {e}")))?;
        let me = Self {
            target,
            client,
            runtime,
        };
        me.block_on(me.client.health_check())
            .map_err(|e| me.error("the server does not answer", e))?;
        Ok(me)
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// An error of a request, with what to do where the cause is known.
    fn error(&self, what: &str, e: qdrant_client::QdrantError) -> Error {
        let text = e.to_string();
        let hint = if text.contains("transport error")
            || text.contains("Unavailable")
            || text.contains("connect")
        {
            " Is a Qdrant server listening there? The engine speaks gRPC: use Qdrant's gRPC \
             port (6334 by default), not the REST port (6333)."
        } else {
            ""
        };
        Error::Qdrant {
            backend: self.target.describe(),
            message: format!("{what}: {text}.{hint}"),
        }
    }

    /// What the server holds for the collection; `None` when there is no such collection.
    ///
    /// # Errors
    ///
    /// [`Error::Qdrant`] when the server fails.
    pub fn remote_collection(&self) -> Result<Option<RemoteCollection>> {
        let name = &self.target.collection;
        let exists = self
            .block_on(self.client.collection_exists(name))
            .map_err(|e| self.error("could not list the collections", e))?;
        if !exists {
            return Ok(None);
        }
        let info = self
            .block_on(self.client.collection_info(name))
            .map_err(|e| self.error("could not read the collection's settings", e))?
            .result
            .unwrap_or_default();
        let config = info.config.unwrap_or_default();
        let params = config.params.unwrap_or_default();
        let dense = match params.vectors_config.and_then(|v| v.config) {
            Some(Config::ParamsMap(map)) => map.map.get(DENSE_VECTOR).map(|p| {
                (
                    p.size,
                    format!("{:?}", Distance::try_from(p.distance).unwrap_or_default()),
                    p.multivector_config.is_some(),
                )
            }),
            _ => None,
        };
        let sparse = params
            .sparse_vectors_config
            .is_some_and(|s| s.map.contains_key(SPARSE_VECTOR));
        let spec = config
            .metadata
            .get(METADATA_KEY)
            .and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) => serde_json::from_str(s).ok(),
                _ => None,
            });
        Ok(Some(RemoteCollection {
            spec,
            dense,
            sparse,
            points: info.points_count.unwrap_or_default(),
            shards: params.shard_number,
            replicas: params.replication_factor.unwrap_or(1),
        }))
    }

    fn mismatch(&self, message: String) -> Error {
        Error::Qdrant {
            backend: self.target.describe(),
            message,
        }
    }

    /// Checks that `remote`'s vectors can hold the points of `spec`.
    fn check_vectors(&self, spec: &CollectionSpec, remote: &RemoteCollection) -> Result<()> {
        let want = spec
            .dense
            .as_ref()
            .map(|d| (d.size as u64, d.distance.clone(), true));
        let mut problems = Vec::new();
        if want != remote.dense {
            let show = |d: &Option<(u64, String, bool)>| match d {
                Some((size, distance, multi)) => format!(
                    "{size} dimensions, {distance}{}",
                    if *multi { ", multivector" } else { "" }
                ),
                None => "none".into(),
            };
            problems.push(format!(
                "the named vector {DENSE_VECTOR:?} is {} there, the engine collection needs {}",
                show(&remote.dense),
                show(&want)
            ));
        }
        if !remote.sparse {
            problems.push(format!("it has no sparse vector {SPARSE_VECTOR:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.mismatch(format!(
                "{}. It was not made by `hybrid-search qdrant sync` for this collection: sync to \
                 another --collection name, or delete it first",
                problems.join("; ")
            )))
        }
    }
}

/// How `sync` lays the collection out on a cluster (used only when it creates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncOptions {
    /// Shards (`None`: the server's default, one per peer).
    pub shards: Option<u32>,
    /// Copies of each shard (`None`: the server's default, 1).
    pub replicas: Option<u32>,
    /// Points per request (0: [`DEFAULT_SYNC_BATCH`]).
    pub batch: usize,
}

/// Points per upsert request by default.
pub const DEFAULT_SYNC_BATCH: usize = 256;

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncReport {
    /// Whether the collection was created.
    pub created: bool,
    /// Live documents of the engine collection (= points after the sync).
    pub documents: u64,
    /// Points sent whole (new or changed).
    pub upserted: u64,
    /// Unchanged points whose BM25 vector alone was sent (the corpus's `avgdl` changed).
    pub bm25_refreshed: u64,
    /// Points left as they were.
    pub unchanged: u64,
    /// Points deleted (documents no longer in the engine collection).
    pub deleted: u64,
    /// Payload indexes created (one per field not indexed by an earlier sync).
    pub indexes_created: u64,
    /// Fields sent as payload that cannot be indexed or filtered through Qdrant (a name with
    /// a double quote or a backslash, [`payload_key`]).
    pub unindexed_fields: Vec<String>,
    /// Bytes of the gRPC request messages sent (protobuf encoded length).
    pub bytes_sent: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Makes the Qdrant collection of `client` equal to `collection`: creates it when missing
/// (named dense multivector and sparse vectors, `options`' shards and replicas), sends every
/// new or changed point, the BM25 vectors alone of unchanged points when the corpus's `avgdl`
/// changed since the last sync, deletes the points of documents gone, and records the
/// collection's spec in its metadata last (so an interrupted sync is finished by the next).
/// `progress(done, total)` after each batch.
///
/// # Errors
///
/// [`Error::Qdrant`] when the server fails or holds a collection of other vectors;
/// [`Error::Engine`] when the engine collection cannot be read.
pub fn sync(
    collection: &Collection,
    client: &Client,
    options: SyncOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<SyncReport> {
    let started = Instant::now();
    let name = client.target.collection.clone();
    let spec = CollectionSpec::of(collection)?;
    let remote = client.remote_collection()?;
    let created = remote.is_none();
    let mut bytes_sent = 0u64;
    let refresh_bm25 = match &remote {
        None => {
            let mut vectors = VectorsConfigBuilder::default();
            if let Some(d) = &spec.dense {
                let distance = if d.distance == "Dot" {
                    Distance::Dot
                } else {
                    Distance::Cosine
                };
                vectors.add_named_vector_params(
                    DENSE_VECTOR,
                    VectorParamsBuilder::new(d.size as u64, distance).multivector_config(
                        MultiVectorConfig {
                            comparator: MultiVectorComparator::MaxSim as i32,
                        },
                    ),
                );
            }
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(SPARSE_VECTOR, SparseVectorParamsBuilder::default());
            let mut create = CreateCollectionBuilder::new(&name)
                .vectors_config(vectors)
                .sparse_vectors_config(sparse);
            if let Some(n) = options.shards {
                create = create.shard_number(n);
            }
            if let Some(r) = options.replicas {
                create = create.replication_factor(r);
            }
            client
                .block_on(client.client.create_collection(create))
                .map_err(|e| client.error("could not create the collection", e))?;
            false
        }
        Some(r) => {
            client.check_vectors(&spec, r)?;
            if let Some(n) = options.shards.filter(|n| *n != r.shards) {
                return Err(client.mismatch(format!(
                    "it has {} shards, --shards asks for {n}; a collection's shard count is set \
                     when it is created: sync to another --collection name, or delete it first",
                    r.shards
                )));
            }
            match &r.spec {
                Some(old) => {
                    old.bm25.avg_len != spec.bm25.avg_len
                        || old.bm25.avg_len_bigrams != spec.bm25.avg_len_bigrams
                        || old.analyzer != spec.analyzer
                }
                None => true,
            }
        }
    };
    // A payload index per field an earlier sync did not index, before the points come (Qdrant
    // builds its filterable HNSW links as they arrive).
    let indexed: Vec<&str> = remote
        .as_ref()
        .and_then(|r| r.spec.as_ref())
        .map(|s| s.fields.iter().map(|f| f.name.as_str()).collect())
        .unwrap_or_default();
    let (mut indexes_created, mut unindexed_fields) = (0u64, Vec::new());
    for field in spec
        .fields
        .iter()
        .filter(|f| !indexed.contains(&f.name.as_str()))
    {
        let Ok(key) = payload_key(&field.name) else {
            unindexed_fields.push(field.name.clone());
            continue;
        };
        let request =
            CreateFieldIndexCollectionBuilder::new(&name, key, index_type(field.kind)).wait(true);
        client
            .block_on(client.client.create_field_index(request))
            .map_err(|e| {
                client.error(
                    &format!(
                        "could not create the payload index of field {:?}",
                        field.name
                    ),
                    e,
                )
            })?;
        indexes_created += 1;
    }
    // What the server holds: point id -> digest.
    let mut held: HashMap<String, String> = HashMap::new();
    if !created {
        let mut offset: Option<PointId> = None;
        loop {
            let mut scroll = ScrollPointsBuilder::new(&name)
                .limit(1000)
                .with_payload(PayloadIncludeSelector::new(vec![DIGEST.to_string()]))
                .with_vectors(false);
            if let Some(o) = offset.take() {
                scroll = scroll.offset(o);
            }
            let page = client
                .block_on(client.client.scroll(scroll))
                .map_err(|e| client.error("could not list the points", e))?;
            for p in page.result {
                let digest = p
                    .payload
                    .get(DIGEST)
                    .and_then(string_of)
                    .unwrap_or_default();
                if let Some(id) = p.id.as_ref().and_then(id_string) {
                    held.insert(id, digest);
                }
            }
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
    }
    let batch = if options.batch == 0 {
        DEFAULT_SYNC_BATCH
    } else {
        options.batch
    };
    let total = collection.len();
    let dense_leg = spec.dense.is_some();
    let (mut done, mut upserted, mut refreshed, mut unchanged) = (0u64, 0u64, 0u64, 0u64);
    let mut failure: Option<Error> = None;
    collection
        .for_each_point(batch, &mut |points| {
            let n = points.len() as u64;
            let mut upserts = Vec::new();
            let mut bm25_only = Vec::new();
            for data in points {
                let point = Point::of(data, dense_leg, collection.fields());
                let id = point.id.to_string();
                match held.remove(&id) {
                    Some(digest) if digest == point.payload.digest => {
                        if refresh_bm25 {
                            let v = &point.vector.bm25;
                            bm25_only.push(PointVectors {
                                id: Some(PointId::from(id)),
                                vectors: Some(
                                    HashMap::from([(
                                        SPARSE_VECTOR.to_string(),
                                        qdrant_client::qdrant::Vector::new_sparse(
                                            v.indices.clone(),
                                            v.values.clone(),
                                        ),
                                    )])
                                    .into(),
                                ),
                            });
                        } else {
                            unchanged += 1;
                        }
                    }
                    _ => upserts.push(point_struct(point)),
                }
            }
            let result = (|| -> Result<()> {
                if !upserts.is_empty() {
                    let request = UpsertPointsBuilder::new(&name, upserts).wait(true).build();
                    bytes_sent += request.encoded_len() as u64;
                    upserted += request.points.len() as u64;
                    client
                        .block_on(client.client.upsert_points(request))
                        .map_err(|e| client.error("could not upsert points", e))?;
                }
                if !bm25_only.is_empty() {
                    let request = UpdatePointVectorsBuilder::new(&name, bm25_only)
                        .wait(true)
                        .build();
                    bytes_sent += request.encoded_len() as u64;
                    refreshed += request.points.len() as u64;
                    client
                        .block_on(client.client.update_vectors(request))
                        .map_err(|e| client.error("could not update BM25 vectors", e))?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                failure = Some(e);
                return Err(hybrid_search::Error::InvalidOption("sync failed".into()));
            }
            done += n;
            progress(done.min(total), total);
            Ok(())
        })
        .map_err(|e| failure.take().unwrap_or(Error::Engine(e)))?;
    // Points of documents no longer in the engine collection.
    let gone: Vec<PointId> = held.into_keys().map(PointId::from).collect();
    let deleted = gone.len() as u64;
    for chunk in gone.chunks(1000) {
        let request = DeletePointsBuilder::new(&name)
            .points(chunk.to_vec())
            .wait(true)
            .build();
        bytes_sent += request.encoded_len() as u64;
        client
            .block_on(client.client.delete_points(request))
            .map_err(|e| client.error("could not delete points", e))?;
    }
    let metadata = HashMap::from([(
        METADATA_KEY.to_string(),
        serde_json::Value::String(serde_json::to_string(&spec).unwrap_or_default()),
    )]);
    client
        .block_on(
            client
                .client
                .update_collection(UpdateCollectionBuilder::new(&name).metadata(metadata)),
        )
        .map_err(|e| client.error("could not record the sync in the collection's metadata", e))?;
    Ok(SyncReport {
        created,
        documents: total,
        upserted,
        bm25_refreshed: refreshed,
        unchanged,
        deleted,
        indexes_created,
        unindexed_fields,
        bytes_sent,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The gRPC point of `point`.
pub(crate) fn point_struct(point: Point) -> PointStruct {
    let mut vectors: HashMap<String, qdrant_client::qdrant::Vector> = HashMap::new();
    if let Some(dense) = point.vector.dense {
        vectors.insert(
            DENSE_VECTOR.to_string(),
            qdrant_client::qdrant::Vector::new_multi(dense),
        );
    }
    let bm25 = point.vector.bm25;
    vectors.insert(
        SPARSE_VECTOR.to_string(),
        qdrant_client::qdrant::Vector::new_sparse(bm25.indices, bm25.values),
    );
    let p = point.payload;
    let mut payload: HashMap<String, Value> = HashMap::from([
        (DOC_ID.to_string(), Value::from(p.doc_id)),
        ("title".to_string(), Value::from(p.title)),
        ("text".to_string(), Value::from(p.text)),
        (DIGEST.to_string(), Value::from(p.digest)),
    ]);
    if !p.fields.is_empty() {
        payload.insert(
            FIELDS_KEY.to_string(),
            Value::from(serde_json::Value::Object(p.fields)),
        );
    }
    PointStruct::new(point.id.to_string(), vectors, payload)
}

fn string_of(v: &Value) -> Option<String> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn id_string(id: &PointId) -> Option<String> {
    match &id.point_id_options {
        Some(PointIdOptions::Uuid(u)) => Some(u.clone()),
        Some(PointIdOptions::Num(n)) => Some(n.to_string()),
        None => None,
    }
}

/// How searches through Qdrant run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegsOptions {
    /// Exact (brute-force) dense search instead of Qdrant's HNSW.
    pub exact: bool,
    /// Let Qdrant fuse the legs (RRF or DBSF) instead of the engine.
    pub server_fusion: Option<ServerFusion>,
}

/// The legs of an engine collection's searches, answered by a Qdrant collection that `sync`
/// filled from it ([`Legs`](hybrid_search::Legs)).
pub struct QdrantLegs {
    client: Client,
    options: LegsOptions,
    hnsw_ef: u64,
}

impl QdrantLegs {
    /// Connects to `client`'s collection and checks that it holds `collection`'s points: the
    /// same vectors, model and analyzer. Returns the legs and warnings for a collection that
    /// is behind (a different document count or BM25 statistics: run `sync` again).
    ///
    /// # Errors
    ///
    /// [`Error::Qdrant`] when the collection is missing or holds other vectors, another model
    /// or another analyzer's terms.
    pub fn new(
        client: Client,
        collection: &Collection,
        options: LegsOptions,
    ) -> Result<(Self, Vec<String>)> {
        let spec = CollectionSpec::of(collection)?;
        let sync_hint = format!(
            "`hybrid-search qdrant sync --index {} --url {} --collection {}`",
            collection.dir().display(),
            client.target.url,
            client.target.collection
        );
        let Some(remote) = client.remote_collection()? else {
            return Err(client.mismatch(format!(
                "there is no such collection; fill it from the engine collection with {sync_hint}"
            )));
        };
        client.check_vectors(&spec, &remote)?;
        let Some(synced) = &remote.spec else {
            return Err(client.mismatch(format!(
                "no complete sync is recorded in its metadata (a sync was interrupted, or \
                 another program made it); run {sync_hint}"
            )));
        };
        let differences = spec.differences(synced);
        if !differences.is_empty() {
            return Err(client.mismatch(format!(
                "it holds points of another engine collection: {} (the engine collection's \
                 first); run {sync_hint}",
                differences.join("; ")
            )));
        }
        let mut warnings = Vec::new();
        if synced.bm25 != spec.bm25 || remote.points != spec.bm25.live_docs {
            warnings.push(format!(
                "{}: it is behind the engine collection ({} points, synced at {} documents; \
                 the collection has {} now): BM25 scores and results will differ until you \
                 run {sync_hint}",
                client.target.describe(),
                remote.points,
                synced.bm25.live_docs,
                spec.bm25.live_docs
            ));
        }
        let hnsw_ef = spec.dense.as_ref().map_or(128, |d| d.hnsw_ef as u64);
        Ok((
            Self {
                client,
                options,
                hnsw_ef,
            },
            warnings,
        ))
    }

    fn sparse_query(&self, v: &SparseVector) -> Query {
        Query::new_nearest(VectorInput::new_sparse(v.indices.clone(), v.values.clone()))
    }

    fn dense_query(&self, v: &[f32]) -> Query {
        Query::new_nearest(VectorInput::new_multi(vec![v.to_vec()]))
    }

    fn params(&self) -> SearchParamsBuilder {
        SearchParamsBuilder::default()
            .hnsw_ef(self.hnsw_ef)
            .exact(self.options.exact)
    }

    fn leg(
        &self,
        query: Query,
        using: &str,
        limit: usize,
        filter: Option<&qdrant_client::qdrant::Filter>,
    ) -> QueryPoints {
        let mut q = QueryPointsBuilder::new(&self.client.target.collection)
            .query(query)
            .using(using)
            .limit(limit as u64)
            .with_payload(PayloadIncludeSelector::new(vec![DOC_ID.to_string()]));
        if let Some(f) = filter {
            q = q.filter(f.clone());
        }
        if using == DENSE_VECTOR {
            q = q.params(self.params());
        }
        q.build()
    }
}

/// (external id, score) of each scored point, from its payload.
fn id_list(points: Vec<ScoredPoint>) -> Vec<(Arc<str>, f32)> {
    points
        .into_iter()
        .map(|p| {
            let id = p
                .payload
                .get(DOC_ID)
                .and_then(string_of)
                .or_else(|| p.id.as_ref().and_then(id_string))
                .unwrap_or_default();
            (Arc::from(id), p.score)
        })
        .collect()
}

impl Legs for QdrantLegs {
    fn describe(&self) -> String {
        self.client.target.describe()
    }

    /// One batch of queries: the sparse leg (the query's BM25 vector, weighed with the
    /// snapshot's statistics), the dense leg, and, in a hybrid search with a server fusion,
    /// Qdrant's fusion of the two, whose hits are explained by [`explain`].
    fn search(&self, snapshot: &Snapshot, query: &LegQuery<'_>) -> hybrid_search::Result<LegLists> {
        let filter = query
            .filter
            .map(|f| QdrantFilter::translate(&f.filter, snapshot.fields()))
            .transpose()
            .map_err(|problem| hybrid_search::Error::InvalidRequest {
                setting: hybrid_search::Setting::Filter,
                problem: format!("{problem} (searching through {})", self.describe()),
            })?
            .map(|f| f.to_grpc());
        let sparse = match query.sparse {
            true => Some(snapshot.query_sparse_vector_of(&*query.analysed(snapshot)?)?),
            false => None,
        };
        let server = self.options.server_fusion.filter(|_| query.dense.is_some());
        let fused = query.fused.filter(|_| server.is_some());
        let (sparse, dense, server_list) = self.lists(
            sparse.as_ref(),
            query.dense,
            query.depth,
            fused,
            filter.as_ref(),
        )?;
        let fused = match server {
            Some(fusion) if query.fused.is_some() => {
                Some(explain(fusion, &sparse, &dense, server_list, query.depth)?)
            }
            _ => None,
        };
        Ok(LegLists {
            sparse,
            dense: Ok(dense),
            fused,
        })
    }
}

impl QdrantLegs {
    /// The top `depth` documents of each leg given a query: `sparse` (the query's BM25
    /// vector) and `dense` (its vector); with `fused = Some(k)`, also the server's fusion of
    /// the two lists, top `k`; each list among the points `filter` selects.
    fn lists(
        &self,
        sparse: Option<&SparseVector>,
        dense: Option<&[f32]>,
        depth: usize,
        fused: Option<usize>,
        filter: Option<&qdrant_client::qdrant::Filter>,
    ) -> hybrid_search::Result<(IdList, IdList, Option<IdList>)> {
        // An empty BM25 vector (no query term in the index) matches nothing.
        let sparse = sparse.filter(|v| !v.is_empty());
        let mut requests = Vec::new();
        if let Some(v) = sparse {
            requests.push(self.leg(self.sparse_query(v), SPARSE_VECTOR, depth, filter));
        }
        if let Some(v) = dense {
            requests.push(self.leg(self.dense_query(v), DENSE_VECTOR, depth, filter));
        }
        if let (Some(k), Some(fusion)) = (fused, self.options.server_fusion) {
            let mut q = QueryPointsBuilder::new(&self.client.target.collection)
                .limit(k as u64)
                .with_payload(PayloadIncludeSelector::new(vec![DOC_ID.to_string()]));
            let filtered = |p: PrefetchQueryBuilder| match filter {
                Some(f) => p.filter(f.clone()),
                None => p,
            };
            if let Some(v) = sparse {
                q = q.add_prefetch(filtered(
                    PrefetchQueryBuilder::default()
                        .query(self.sparse_query(v))
                        .using(SPARSE_VECTOR)
                        .limit(depth as u64),
                ));
            }
            if let Some(v) = dense {
                q = q.add_prefetch(filtered(
                    PrefetchQueryBuilder::default()
                        .query(self.dense_query(v))
                        .using(DENSE_VECTOR)
                        .params(self.params())
                        .limit(depth as u64),
                ));
            }
            if let Some(f) = filter {
                q = q.filter(f.clone());
            }
            q = q.query(match fusion {
                ServerFusion::Rrf => Query::new_rrf(Rrf {
                    k: Some(QDRANT_RRF_K),
                    weights: Vec::new(),
                }),
                ServerFusion::Dbsf => Query::new_fusion(Fusion::Dbsf),
            });
            requests.push(q.build());
        }
        if requests.is_empty() {
            return Ok((Vec::new(), Vec::new(), fused.map(|_| Vec::new())));
        }
        let request = QueryBatchPointsBuilder::new(&self.client.target.collection, requests);
        let answers = self
            .client
            .block_on(self.client.client.query_batch(request))
            .map_err(|e| match self.client.error("the search failed", e) {
                Error::Qdrant { backend, message } => {
                    hybrid_search::Error::Remote { backend, message }
                }
                other => hybrid_search::Error::Remote {
                    backend: self.client.target.describe(),
                    message: other.to_string(),
                },
            })?;
        let mut lists = answers.result.into_iter().map(|b| id_list(b.result));
        let mut next = |asked: bool| asked.then(|| lists.next().unwrap_or_default());
        let sparse = next(sparse.is_some()).unwrap_or_default();
        let dense = next(dense.is_some()).unwrap_or_default();
        let fused = next(fused.is_some() && self.options.server_fusion.is_some());
        Ok((sparse, dense, fused))
    }
}
