//! A small WebDriver client for the console's browser test: Debian's `chromedriver` driving a
//! headless `chromium`, spoken to over HTTP/1.1 with JSON (the W3C WebDriver protocol). Only
//! what the test uses: a session, navigation, elements (find, click, type, text, attributes),
//! scripts and screenshots.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    address: String,
    session: String,
}

/// One HTTP/1.1 request to chromedriver; the JSON answer's `value`, or the WebDriver error.
fn call(address: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut stream = std::net::TcpStream::connect(address).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever the request says: read the head, then
    // exactly the body it announces.
    let mut answer = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before an answer".into());
        }
        answer.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let chunked = head.contains("transfer-encoding: chunked");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    loop {
        let have = answer.len() - head_end;
        let complete = match length {
            Some(length) => have >= length,
            None => chunked && answer.ends_with(b"0\r\n\r\n"),
        };
        if complete {
            break;
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let rest = String::from_utf8_lossy(&answer[head_end..]).into_owned();
    let body = if chunked { dechunk(&rest) } else { rest };
    let json: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let value = json.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let message = value.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(format!("{method} {path}: {error}: {message}"));
    }
    Ok(value)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub fn start() -> Browser {
        let port = super::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/deps.sh test installs chromium-driver)");
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if call(&address, "GET", "/status", None).is_ok_and(|v| v["ready"] == true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut options = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1400,900",
        ]});
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}});
        let session = call(&address, "POST", "/session", Some(&capabilities))
            .unwrap_or_else(|e| panic!("a browser session: {e}"));
        let session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            driver,
            address,
            session,
        }
    }

    fn session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        call(&self.address, method, &path, body)
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({"url": url})))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The element `css` selects, when there is one.
    pub fn find(&self, css: &str) -> Option<String> {
        let found = self
            .session_call(
                "POST",
                "/element",
                Some(&json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        found[ELEMENT].as_str().map(str::to_string)
    }

    pub fn click(&self, element: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        )
        .unwrap_or_else(|e| panic!("click: {e}"));
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({"text": text})),
        )
        .unwrap_or_else(|e| panic!("type: {e}"));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
        .unwrap_or_else(|e| panic!("script: {e}"))
    }

    /// Saves a PNG of the window to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let png = self
            .session_call("GET", "/screenshot", None)
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot directory");
        }
        std::fs::write(path, bytes).expect("the screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.session_call("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
