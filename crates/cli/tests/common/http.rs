//! A `hybrid-search serve` process for tests, and a small JSON client over ureq.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running server; killed when dropped.
pub struct Served {
    pub child: Child,
    pub base: String,
    pub key: Option<String>,
    agent: ureq::Agent,
}

/// An HTTP answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub retry_after: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

impl Served {
    /// Starts `serve --data DATA --addr 127.0.0.1:0 EXTRA...` and waits for its address line.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hybrid-search"))
            .args([
                "serve",
                "--data",
                data.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env_remove("HYBRID_SEARCH_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve printed {line:?} instead of its address"))
            .to_string();
        let key = extra
            .iter()
            .position(|a| *a == "--api-key")
            .map(|i| extra[i + 1].to_string());
        Self {
            child,
            base,
            key,
            agent: agent(),
        }
    }

    /// `method path` with `body` (JSON text or JSONL), with the API key when the server has one.
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.call_as(method, path, body, self.key.as_deref())
    }

    /// `method path` with `body` and the bearer token `key` (none: no Authorization header).
    pub fn call_as(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        key: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let auth = key.map(|k| format!("Bearer {k}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("POST", body) => {
                let mut r = self.agent.post(&url).content_type("application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body.unwrap_or(""))
            }
            _ => panic!("method {method}"),
        };
        let response = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, text) = status_and_text(response);
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            text,
            retry_after,
        }
    }

    /// POSTs `body` as JSON and expects 200, returning the answer's JSON.
    pub fn post_ok(&self, path: &str, body: &Value) -> Value {
        let a = self.call("POST", path, Some(&body.to_string()));
        assert_eq!(a.status, 200, "POST {path}: {}", a.text);
        a.body
    }

    /// Sends `head` (a request line and headers, each ending in CRLF, without the blank line)
    /// with no body, and returns the status and body of the answer.
    pub fn raw(&self, head: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = self.base.strip_prefix("http://").unwrap();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(stream, "{head}Connection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    /// Sends only the head of a POST whose `Content-Length` says `length` bytes (no body): a
    /// server that checks the declared length answers at once.
    pub fn declared_only(&self, path: &str, length: usize) -> (u16, String) {
        let addr = self.base.strip_prefix("http://").unwrap();
        let auth = self
            .key
            .as_ref()
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        self.raw(&format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {length}\r\n"
        ))
    }

    /// `method path` with `body` and extra headers (name, value), with the API key.
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "POST" => self.agent.post(&url),
            _ => panic!("method {method}"),
        };
        if let Some(k) = &self.key {
            r = r.header("Authorization", &format!("Bearer {k}"));
        }
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        let (status, text) = status_and_text(r.send(body).unwrap());
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            text,
            retry_after: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process; returns whether it exited with status 0.
    pub fn terminate(mut self) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        status.success()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response's status and its body as text (up to 64 MiB).
pub fn status_and_text(mut response: ureq::http::Response<ureq::Body>) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    (status, text)
}

/// The error code of an error answer.
pub fn code(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or("")
}
