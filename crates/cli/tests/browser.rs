//! The search page of `hybrid-search serve` in a real headless browser: Debian's Chromium driven
//! through ChromeDriver's WebDriver protocol. The page lists the collections, a typed query
//! gives the same hits as the API, matches are highlighted, each hit shows a bar of each leg's
//! share, and document text is shown as text, never as HTML. A screenshot is written to
//! `target/tmp/search-page.png`.
//!
//! Needs /usr/bin/chromium and /usr/bin/chromedriver (`scripts/fetch-browser.sh` installs
//! them, as `scripts/test.sh` does); without them it fails under CI and is skipped elsewhere,
//! saying so.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::http::Served;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process and one browser session in it.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
}

impl Browser {
    fn start(profile: &Path) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while agent.get(&format!("{base}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            agent,
        };
        // The flags Chromium needs on a machine with no network and no display.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1000",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let created = browser.send(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        browser
    }

    /// A WebDriver command; returns its `value`.
    fn send(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "POST" => self.agent.post(&url).send_json(&body),
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => unreachable!(),
        };
        let response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let (status, text) = common::http::status_and_text(response);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(status, 200, "{method} {path}: {text}");
        value["value"].clone()
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        self.send(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    fn element(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Waits until `script` returns true.
    fn wait_for(&self, script: &str, what: &str) {
        let started = Instant::now();
        while self.eval(script) != Value::Bool(true) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn screenshot(&self, to: &Path) {
        let png = self.command("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.agent.delete(&url).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_search_page_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs Debian's chromium and chromium-driver: scripts/fetch-browser.sh installs them"
        );
        eprintln!(
            "skipped: {CHROMIUM} or {CHROMEDRIVER} missing (scripts/fetch-browser.sh installs them)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::tiny_model_collection(tmp.path());
    let server = Served::start(tmp.path(), &[]);
    // A document whose title is markup: the page must show it as text.
    server.post_ok(
        "/collections/idx/documents",
        &json!([
            {"id": "html-1", "title": "<b>bold</b> <img src=x onerror=alert(1)>", "text": "ferritin in sepsis"},
            {"id": "stars", "title": "Stars", "text": "zebrafish **bold** in a 2*3 grid"},
        ]),
    );
    let browser = Browser::start(&tmp.path().join("profile"));

    browser.go(&format!("{}/", server.base));
    browser.wait_for(
        "return document.body.dataset.ready === '1'",
        "the collections to load",
    );
    let options = browser
        .eval("return [...document.querySelectorAll('#collection option')].map(o => o.value)");
    assert_eq!(options, json!(["idx"]));

    // Type a query and press the button, as a user does.
    let query = "IL-6 sepsis";
    browser.type_into("#q", query);
    browser.click("#go");
    browser.wait_for(
        "return document.querySelectorAll('li.hit').length > 0",
        "results",
    );
    let shown = browser.eval(
        "return [...document.querySelectorAll('li.hit')].map(li => ({
            id: li.querySelector('.id').textContent,
            marks: [...li.querySelectorAll('.snippet mark')].map(m => m.textContent),
            bars: [...li.querySelectorAll('.legs .leg')].map(b => [b.classList[1], parseFloat(b.style.width)]),
        }))",
    );
    let api = server.post_ok(
        "/collections/idx/search",
        &json!({"query": query, "k": 10, "explain": true}),
    );
    let ids: Vec<&Value> = shown.as_array().unwrap().iter().map(|h| &h["id"]).collect();
    let api_ids: Vec<&Value> = api["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(ids, api_ids, "the page shows the API's hits in its order");
    let marked: Vec<String> = shown
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["marks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_lowercase())
        })
        .collect();
    assert!(
        marked.iter().any(|m| m == "il-6"),
        "IL-6 highlighted: {marked:?}"
    );
    assert!(
        marked.iter().any(|m| m == "sepsis"),
        "sepsis highlighted: {marked:?}"
    );
    for hit in shown.as_array().unwrap() {
        let bars = hit["bars"].as_array().unwrap();
        assert_eq!(bars.len(), 2, "{hit}");
        assert_eq!(
            (bars[0][0].as_str(), bars[1][0].as_str()),
            (Some("sparse"), Some("dense"))
        );
        let total: f64 = bars.iter().map(|b| b[1].as_f64().unwrap()).sum();
        assert!(
            (total - 100.0).abs() < 0.5,
            "the legs' shares add up to the bar: {hit}"
        );
    }
    let status = browser.eval("return document.getElementById('status').textContent");
    assert!(status.as_str().unwrap().contains("hybrid"), "{status}");
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("search-page.png");
    browser.screenshot(&screenshot);
    eprintln!("screenshot: {}", screenshot.display());

    // Markup in a document is shown as text.
    browser.eval("document.getElementById('q').value = ''");
    browser.type_into("#q", "ferritin");
    browser.click("#go");
    browser.wait_for(
        "return [...document.querySelectorAll('li.hit .id')].some(e => e.textContent === 'html-1')",
        "the document with markup",
    );
    let injected =
        browser.eval("return document.querySelectorAll('#results img, #results b').length");
    assert_eq!(injected, json!(0));
    let title = browser.eval(
        "return [...document.querySelectorAll('li.hit')].find(li => li.querySelector('.id').textContent === 'html-1').querySelector('.title').textContent",
    );
    assert_eq!(title, json!("<b>bold</b> <img src=x onerror=alert(1)>"));

    // A text holding `**` and `*` itself: shown as it is, only the match marked.
    browser.eval("document.getElementById('q').value = ''");
    browser.type_into("#q", "zebrafish");
    browser.click("#go");
    browser.wait_for(
        "return [...document.querySelectorAll('li.hit .id')].some(e => e.textContent === 'stars')",
        "the document with stars",
    );
    let stars = browser.eval(
        "const li = [...document.querySelectorAll('li.hit')].find(li => li.querySelector('.id').textContent === 'stars');
         const s = li.querySelector('.snippet');
         return [s.textContent, [...s.querySelectorAll('mark')].map(m => m.textContent)]",
    );
    assert_eq!(
        stars,
        json!(["zebrafish **bold** in a 2*3 grid", ["zebrafish"]])
    );

    // A bad request shows the server's error.
    browser.eval("document.getElementById('mode').value = 'dense'; document.getElementById('q').value = 'x'.repeat(5000)");
    browser.click("#go");
    browser.wait_for(
        "return document.getElementById('status').className === 'error'",
        "the error",
    );
    let error = browser.eval("return document.getElementById('status').textContent");
    assert!(
        error.as_str().unwrap().contains("query: 5000 characters"),
        "{error}"
    );
}
