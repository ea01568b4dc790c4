//! The two static files of the sign-in pages, `/static/latchkey.css` and
//! `/static/device-auth.js` (the device step's wait), with their cache
//! headers. Both listeners serve the stylesheet.
//!
//! Nothing here depends on a request: no session, no language. The pages
//! that use them are in `pages.rs` and `pages/`; the content policy that
//! allows only these is in `frame.rs`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub async fn device_auth_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        DEVICE_AUTH_SCRIPT,
    )
        .into_response()
}

const STYLESHEET: &str = r#":root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--accent:#0b5cad;--err:#a4161a;--muted:#59636e}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#111418;--card:#1b2027;--accent:#6cb0ff;--err:#ff8a8a;--muted:#9aa4ae}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI","Hiragino Sans","Noto Sans JP",Meiryo,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;justify-content:space-between;align-items:center;max-width:30rem;margin:0 auto;padding:1rem}
.brand{font-weight:700}
main{max-width:30rem;margin:0 auto 2rem;padding:1.5rem;background:var(--card);border-radius:.75rem}
h1{font-size:1.4rem;margin-top:0}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input[type=email],input[type=password],input[type=text]{width:100%;padding:.7rem;font-size:1rem;border:1px solid var(--muted);border-radius:.4rem;background:transparent;color:inherit}
button,.button{display:inline-block;margin-top:1rem;padding:.7rem 1.2rem;font-size:1rem;border:0;border-radius:.4rem;background:var(--accent);color:#fff;text-decoration:none;cursor:pointer}
button.secondary{background:transparent;color:var(--accent);border:1px solid var(--accent)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.error{color:var(--err);font-weight:600}
.muted{color:var(--muted)}
.code{font-size:2rem;letter-spacing:.3em;font-weight:700}
.devices,.apps,.checks{padding-left:1.2rem}
.devices li{margin:.75rem 0}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
h2{font-size:1.1rem;margin-top:2rem}
.center{text-align:center}
.qr{background:#fff;padding:.5rem;border-radius:.4rem}
.secret code{font-size:1.1rem;word-spacing:.3em}
.notice{color:var(--accent);font-weight:600}
fieldset{border:0;padding:0;margin:1rem 0 0}
legend{font-weight:600}
label.choice{font-weight:400;margin:.5rem 0}
.scroll{overflow-x:auto}
table.history{border-collapse:collapse;font-size:.85rem;width:100%}
.history th,.history td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--muted);white-space:nowrap}
.history tr.failed td:last-child{color:var(--err)}
main.wide{max-width:60rem}
"#;

const DEVICE_AUTH_SCRIPT: &str = r#"(function () {
  var channel = ('BroadcastChannel' in window) ? new BroadcastChannel('latchkey-device-auth') : null;
  var delivered = document.getElementById('delivered');
  if (delivered) {
    // Opened by the agent. If the sign-in's waiting tab is open in this
    // browser it goes on there and this tab closes; otherwise the sign-in
    // goes on here.
    var dtxn = delivered.getAttribute('data-txn');
    var dnext = delivered.getAttribute('data-next');
    var claimed = false;
    if (channel) {
      channel.onmessage = function (e) {
        if (e.data === 'waiting:' + dtxn) { claimed = true; window.close(); }
      };
      channel.postMessage('delivered:' + dtxn);
    }
    setTimeout(function () { if (!claimed) window.location.assign(dnext); }, 1500);
    return;
  }
  var root = document.getElementById('device-auth');
  if (!root) return;
  var txn = root.getAttribute('data-txn');
  var next = root.getAttribute('data-next');
  var done = false;
  function go() { if (!done) { done = true; window.location.assign(next); } }
  if (channel) {
    channel.onmessage = function (e) {
      if (e.data === 'delivered:' + txn) { channel.postMessage('waiting:' + txn); go(); }
    };
  }
  function poll() {
    if (done) return;
    fetch('/login/wait?txn=' + encodeURIComponent(txn), { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (j) { if (j.status === 'pending') { poll(); } else { go(); } })
      .catch(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
"#;
