//! Pseudo-relevance feedback: a first pass of a leg, whose top documents are taken as relevant
//! and rewrite the query for the pass that answers.
//!
//! - **RM3** on BM25 (Lavrenko and Croft, "Relevance-based language models", SIGIR 2001; the
//!   RM3 interpolation of Abdul-Jaleel et al., "UMass at TREC 2004"; as Anserini runs it): the
//!   top `docs` documents of a first BM25 pass, each weighted by its share of their summed
//!   scores, give each term `P(t|R) = sum_d w_d * tf(t, d) / |d|` (terms as the collection's
//!   analyzer makes them, so Korean by its morphemes); the `terms` heaviest, normalised to sum
//!   1, are mixed with the query's own terms (each `1/|q|`) as `lambda * query + (1 - lambda) *
//!   feedback`, `lambda` = `original_weight`, and BM25 searches with those weights (scaled by
//!   `|q|`, so a query's own term weighs 1 when `lambda` is 1).
//! - **Rocchio** on the dense leg (Rocchio, "Relevance feedback in information retrieval",
//!   1971; its pseudo-relevance form, positive documents only): the query vector moves towards
//!   the mean of the top `docs` documents' vectors of a first dense pass, `q' = q + beta *
//!   mean(d)`, normalised to unit length (a document with several windows counts by their
//!   mean).

use std::collections::HashMap;
use std::sync::Arc;

use hybrid_search_sparse::QueryTerms;
use serde::{Deserialize, Serialize};

use crate::collection::Snapshot;
use crate::error::{Error, Result, Setting};
use crate::legs::{LegFilter, LegQuery, Legs};

/// RM3's settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rm3 {
    /// Feedback documents: the top of the first BM25 pass (1 to 100).
    pub docs: usize,
    /// Expansion terms kept (1 to 100).
    pub terms: usize,
    /// The weight of the query's own terms against the feedback, in [0, 1].
    pub original_weight: f32,
}

impl Default for Rm3 {
    /// 10 documents, 10 terms, the query weighing 0.5: Anserini's RM3 defaults
    /// (`fbDocs`, `fbTerms`, `originalQueryWeight`).
    fn default() -> Self {
        Self {
            docs: 10,
            terms: 10,
            original_weight: 0.5,
        }
    }
}

/// Rocchio's settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rocchio {
    /// Feedback documents: the top of the first dense pass (1 to 100).
    pub docs: usize,
    /// The weight of the feedback documents' mean against the query vector, at least 0.
    pub beta: f32,
}

impl Default for Rocchio {
    /// The top 3 documents, beta 0.5.
    fn default() -> Self {
        Self { docs: 3, beta: 0.5 }
    }
}

/// Pseudo-relevance feedback for each leg; both off by default.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prf {
    /// RM3 on the BM25 leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rm3: Option<Rm3>,
    /// Rocchio on the dense leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rocchio: Option<Rocchio>,
}

impl Prf {
    /// No feedback.
    pub const OFF: Prf = Prf {
        rm3: None,
        rocchio: None,
    };

    /// Whether neither leg uses feedback.
    pub fn is_off(&self) -> bool {
        self.rm3.is_none() && self.rocchio.is_none()
    }

    /// Checks the settings' ranges.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] of [`Setting::Prf`] naming the setting and its range.
    pub fn validate(&self) -> Result<()> {
        let bad = |problem: String| {
            Err(Error::InvalidRequest {
                setting: Setting::Prf,
                problem,
            })
        };
        if let Some(r) = self.rm3 {
            if !(1..=100).contains(&r.docs) || !(1..=100).contains(&r.terms) {
                return bad(format!(
                    "rm3: docs {} and terms {} must each be 1 to 100",
                    r.docs, r.terms
                ));
            }
            if !(0.0..=1.0).contains(&r.original_weight) {
                return bad(format!(
                    "rm3: original_weight {} must be between 0 and 1",
                    r.original_weight
                ));
            }
        }
        if let Some(r) = self.rocchio {
            if !(1..=100).contains(&r.docs) {
                return bad(format!("rocchio: docs {} must be 1 to 100", r.docs));
            }
            if !(r.beta.is_finite() && r.beta >= 0.0) {
                return bad(format!("rocchio: beta {} must be 0 or more", r.beta));
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// The BM25 query RM3 rewrites `terms` (the analysis of `query`) into, from a first pass
    /// of `legs`' sparse leg, `rm3.docs` deep among the documents `filter` matches.
    ///
    /// # Errors
    ///
    /// Those of the first pass and of reading the feedback documents.
    pub(crate) fn rm3_expanded(
        &self,
        legs: &dyn Legs,
        query: &str,
        terms: &QueryTerms,
        filter: Option<&LegFilter>,
        rm3: &Rm3,
    ) -> Result<QueryTerms> {
        let _span = tracing::debug_span!("rm3", docs = rm3.docs).entered();
        let first = LegQuery::sparse(query, rm3.docs)
            .with_terms(terms)
            .with_filter(filter);
        let first = legs.search(self, &first)?;
        self.rm3_query(terms, &first.sparse, rm3)
    }

    /// The query vector Rocchio moves `vector` (of `query`) to, from a first pass of `legs`'
    /// dense leg, `rocchio.docs` deep among the documents `filter` matches.
    ///
    /// # Errors
    ///
    /// Those of the first pass (a dense leg that cannot answer) and of reading its vectors.
    pub(crate) fn rocchio_moved(
        &self,
        legs: &dyn Legs,
        query: &str,
        vector: &[f32],
        filter: Option<&LegFilter>,
        rocchio: &Rocchio,
    ) -> Result<Vec<f32>> {
        let _span = tracing::debug_span!("rocchio", docs = rocchio.docs).entered();
        let first = LegQuery::dense(query, vector, rocchio.docs).with_filter(filter);
        let first = legs.search(self, &first)?.dense?;
        self.rocchio_vector(vector, &first, rocchio)
    }

    /// The RM3 query for `query` from the first pass's `feedback` (ids with BM25 scores, best
    /// first): the query's own terms and up to `rm3.terms` expansion terms, weighted (see the
    /// module's documentation). The query unchanged when the first pass found nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Sparse`] when a feedback document cannot be read or analysed.
    fn rm3_query(
        &self,
        query: &QueryTerms,
        feedback: &[(Arc<str>, f32)],
        rm3: &Rm3,
    ) -> Result<QueryTerms> {
        let feedback = &feedback[..feedback.len().min(rm3.docs)];
        let total: f64 = feedback.iter().map(|(_, s)| f64::from(*s).max(0.0)).sum();
        if query.terms.is_empty() || feedback.is_empty() || total <= 0.0 {
            return Ok(query.clone());
        }
        let analyzer = self.sparse.analyzer();
        let mut model: HashMap<String, f64> = HashMap::new();
        for (id, score) in feedback {
            let Some(doc) = self.sparse.get(id)? else {
                continue;
            };
            let text = if doc.title.is_empty() {
                doc.text
            } else {
                format!("{} {}", doc.title, doc.text)
            };
            let tokens = analyzer.analyze(&text)?;
            if tokens.is_empty() {
                continue;
            }
            let weight = f64::from(score.max(0.0)) / total / tokens.len() as f64;
            for token in tokens {
                // One-character terms (a bound Korean noun, a stray letter) match everywhere.
                if token.term.chars().count() > 1 {
                    *model.entry(token.term).or_insert(0.0) += weight;
                }
            }
        }
        let mut expansion: Vec<(String, f64)> = model.into_iter().collect();
        // Heaviest first; equal weights by term, so the query is the same on every run.
        expansion.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        expansion.truncate(rm3.terms);
        let mass: f64 = expansion.iter().map(|(_, w)| w).sum();
        let lambda = f64::from(rm3.original_weight);
        let own = query.terms.len() as f64;
        let mut weights: HashMap<String, f64> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for (i, term) in query.terms.iter().enumerate() {
            order.push(term.clone());
            weights.insert(term.clone(), lambda * f64::from(query.weight(i)) / own);
        }
        if mass > 0.0 {
            for (term, w) in expansion {
                let entry = weights.entry(term.clone()).or_insert_with(|| {
                    order.push(term);
                    0.0
                });
                *entry += (1.0 - lambda) * w / mass;
            }
        }
        let (terms, weights): (Vec<String>, Vec<f32>) = order
            .into_iter()
            .map(|t| {
                let w = weights[&t] * own;
                (t, w as f32)
            })
            .filter(|(_, w)| *w > 0.0)
            .unzip();
        Ok(QueryTerms {
            terms,
            bigrams: query.bigrams.clone(),
            weights,
        })
    }

    /// The Rocchio query vector for `vector` from the first pass's `feedback` (ids, best
    /// first): `vector + beta * mean of the feedback documents' vectors`, at unit length.
    /// `vector` unchanged when no feedback document has a vector.
    ///
    /// # Errors
    ///
    /// [`Error::DenseDamaged`] or [`Error::Dense`] when the vectors cannot be read.
    fn rocchio_vector(
        &self,
        vector: &[f32],
        feedback: &[(Arc<str>, f32)],
        rocchio: &Rocchio,
    ) -> Result<Vec<f32>> {
        let feedback = &feedback[..feedback.len().min(rocchio.docs)];
        let (_, segments) = self.segments()?;
        let mut sum = vec![0f64; vector.len()];
        let mut found = 0usize;
        for (id, _) in feedback {
            let Some(doc) = self.sparse.get(id)? else {
                continue;
            };
            let Some(segment) = segments.iter().find(|s| s.index.contains(doc.key)) else {
                continue;
            };
            let windows = segment.index.vectors_of(doc.key)?;
            if windows.is_empty() {
                continue;
            }
            for window in &windows {
                for (s, x) in sum.iter_mut().zip(window) {
                    *s += f64::from(*x) / windows.len() as f64;
                }
            }
            found += 1;
        }
        if found == 0 {
            return Ok(vector.to_vec());
        }
        let beta = f64::from(rocchio.beta) / found as f64;
        let moved: Vec<f64> = vector
            .iter()
            .zip(&sum)
            .map(|(q, s)| f64::from(*q) + beta * s)
            .collect();
        let norm = moved.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Ok(vector.to_vec());
        }
        #[allow(clippy::cast_possible_truncation)] // Unit length: each component in [-1, 1].
        Ok(moved.iter().map(|x| (x / norm) as f32).collect())
    }
}
