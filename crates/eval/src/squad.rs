//! SQuAD 1.1-format JSON (such as KorQuAD 1.0), read in place as a retrieval set.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::dataset::{Dataset, Document, Qrels, Query};
use crate::error::{Error, Result};
use crate::lines::line_of_offset;

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    #[serde(default)]
    title: Option<String>,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    #[serde(default)]
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    id: QuestionId,
    question: String,
}

/// A question id: a string, or a number taken as its decimal string.
#[derive(Deserialize)]
#[serde(untagged)]
enum QuestionId {
    Text(String),
    Number(serde_json::Number),
}

/// Reads a SQuAD file into a [`Dataset`] (see [`crate::load_dataset`] for the mapping).
pub(crate) fn read_squad(path: &Path) -> Result<Dataset> {
    let bytes = crate::lines::read_text(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|source| Error::Utf8 {
        path: path.to_path_buf(),
        line: line_of_offset(&bytes, source.valid_up_to()),
        source,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let file: SquadFile = serde_json::from_str(text).map_err(|source| Error::Squad {
        path: path.to_path_buf(),
        source,
    })?;

    // Unique contexts in order of first appearance: (document, has questions).
    let mut docs: Vec<(Document, bool)> = Vec::new();
    let mut by_context: HashMap<&str, usize> = HashMap::new();
    let mut queries = Vec::new();
    let mut qrels = Qrels::new();
    let mut question_at: HashMap<String, (usize, usize)> = HashMap::new();
    for (ai, article) in file.data.iter().enumerate() {
        for (pi, para) in article.paragraphs.iter().enumerate() {
            let idx = *by_context.entry(para.context.as_str()).or_insert_with(|| {
                docs.push((
                    Document {
                        id: format!("{ai}-{pi}"),
                        title: article.title.clone().unwrap_or_default(),
                        text: para.context.clone(),
                        vector: None,
                        fields: Default::default(),
                    },
                    false,
                ));
                docs.len() - 1
            });
            if para.qas.is_empty() {
                continue;
            }
            docs[idx].1 = true;
            let doc_id = &docs[idx].0.id;
            for qa in &para.qas {
                let id = match &qa.id {
                    QuestionId::Text(s) => s.clone(),
                    QuestionId::Number(n) => n.to_string(),
                };
                if let Some(&(fa, fp)) = question_at.get(&id) {
                    return Err(Error::DuplicateQuestion {
                        path: path.to_path_buf(),
                        id,
                        first: format!("article {fa}, paragraph {fp}"),
                        second: format!("article {ai}, paragraph {pi}"),
                    });
                }
                question_at.insert(id.clone(), (ai, pi));
                qrels.insert(id.clone(), HashMap::from([(doc_id.clone(), 1)]));
                queries.push(Query {
                    id,
                    text: qa.question.clone(),
                });
            }
        }
    }
    let corpus = docs
        .into_iter()
        .filter(|(_, has_q)| *has_q)
        .map(|(d, _)| d)
        .collect();
    Ok(Dataset {
        corpus,
        queries,
        qrels,
    })
}
