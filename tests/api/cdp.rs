//! A small Chrome DevTools Protocol client: headless Chromium driven over
//! its WebSocket, for the browser test. It launches Debian's `chromium`
//! (installed by `scripts/install-chromium` when missing), opens one page,
//! and offers what the test needs: navigate, evaluate, wait for a
//! condition in the page (polled in the page with a deadline, never a
//! sleep), keys, screenshots, downloads, and the page's network traffic
//! and errors as recorded events.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::PATIENCE;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Browser {
    _child: tokio::process::Child,
    socket: Socket,
    next_id: u64,
    /// The page's session (flattened target).
    session: String,
    /// Every event received so far, in order.
    pub events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// The Chromium binary: `$CHROMIUM`, else `chromium` on the PATH, installed
/// by `scripts/install-chromium` when missing. Fails with what to do when
/// it cannot be had: the browser test is never skipped.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return path.into();
    }
    let found = || {
        std::process::Command::new("sh")
            .args(["-c", "command -v chromium"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if let Some(path) = found() {
        return path;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-chromium");
    let status = std::process::Command::new(&script).status();
    match (status, found()) {
        (Ok(s), Some(path)) if s.success() => path,
        (status, _) => panic!(
            "the browser test needs headless Chromium and {} could not install it ({status:?}); \
             install Debian's chromium package (apt-get install -y chromium) or set CHROMIUM",
            script.display()
        ),
    }
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and one blank page;
    /// downloads go to `downloads`.
    pub async fn launch(downloads: &Path) -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = tokio::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = stderr.next_line().await.expect("chromium's stderr") {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("chromium exited before it listened for DevTools")
        })
        .await
        .expect("chromium listens for DevTools in time");
        // Keep reading stderr, or a full pipe would block the browser.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("DevTools connects");
        let mut browser = Self {
            _child: child,
            socket,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser.call_browser("Target.createTarget", json!({ "url": "about:blank" })).await;
        let attached = browser
            .call_browser("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }))
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
            .call_browser(
                "Browser.setDownloadBehavior",
                json!({ "behavior": "allow", "downloadPath": downloads, "eventsEnabled": true }),
            )
            .await;
        browser
    }

    /// A command to the page.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(session)).await
    }

    /// A command to the browser itself.
    pub async fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None).await
    }

    async fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket.send(Message::text(message.to_string())).await.expect("DevTools command sent");
        loop {
            let message = self.receive().await;
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("DevTools {method} failed: {error}");
                }
                return message["result"].clone();
            }
        }
    }

    /// The next message; events are recorded on the way.
    async fn receive(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("DevTools answers in time")
                .expect("DevTools connection open")
                .expect("DevTools message");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
                if value.get("method").is_some() {
                    self.events.push(value.clone());
                }
                return value;
            }
        }
    }

    /// Waits for an event that `matches`, among those recorded or to come.
    pub async fn wait_event(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.events.iter().find(|e| matches(e)) {
            return found.clone();
        }
        let wait = async {
            loop {
                let message = self.receive().await;
                if message.get("method").is_some() && matches(&message) {
                    return message;
                }
            }
        };
        tokio::time::timeout(PATIENCE, wait).await.unwrap_or_else(|_| panic!("no event: {what}"))
    }

    /// Opens `url` in the page.
    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value; a thrown exception fails the test.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("the page threw while evaluating `{expression}`: {details:#}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `predicate` (a JavaScript expression) is truthy in the
    /// page, and returns its value. The page checks it every 25 ms up to a
    /// deadline; failing, the test shows what the page says.
    pub async fn wait_until(&mut self, what: &str, predicate: &str) -> Value {
        // Shorter than PATIENCE, so the page answers before the socket's
        // own time-out and the failure says what the page showed.
        let deadline = PATIENCE.as_millis() - 10_000;
        let expression = format!(
            "new Promise((resolve) => {{ const end = Date.now() + {deadline}; const tick = () => {{ let v = null; \
             try {{ v = ({predicate}); }} catch (e) {{ v = null; }} if (v) resolve(v instanceof Node ? true : v); \
             else if (Date.now() > end) resolve(null); else setTimeout(tick, 25); }}; tick(); }})"
        );
        let value = self.eval(&expression).await;
        if value.is_null() || value == false {
            let text = self.eval("document.body ? document.body.innerText.slice(0, 3000) : ''").await;
            panic!("timed out waiting for {what}; the page shows:\n{}", text.as_str().unwrap_or_default());
        }
        value
    }

    /// Presses a key (`Tab`, `Enter`) as the keyboard would.
    pub async fn press(&mut self, key: &str, shift: bool) {
        let (code, text) = match key {
            "Tab" => (9, ""),
            "Enter" => (13, "\r"),
            other => panic!("no key code for {other}"),
        };
        let modifiers = if shift { 8 } else { 0 };
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({ "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code,
                                     "modifiers": modifiers });
            if kind == "keyDown" && !text.is_empty() {
                params["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", params).await;
        }
    }

    /// Types text into the focused element.
    pub async fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// The viewport: `(width, height, mobile)`.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        let params = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile });
        self.call("Emulation.setDeviceMetricsOverride", params).await;
    }

    /// Saves a PNG of the whole page (up to 4000 px tall) to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        self.screenshot_up_to(path, 4000.0).await;
    }

    /// Saves a PNG of the top of the page, at most `max_height` px tall.
    pub async fn screenshot_up_to(&mut self, path: &Path, max_height: f64) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0);
        let height = size["height"].as_f64().unwrap_or(900.0).min(max_height);
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true,
                        "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 } }),
            )
            .await;
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        std::fs::write(path, png).expect("screenshot saved");
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        let _ =
            self.socket.send(Message::text(json!({ "id": 0, "method": "Browser.close" }).to_string())).await;
    }
}

/// Standard base64 (what DevTools sends screenshots in).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..=take]);
    }
    out
}
