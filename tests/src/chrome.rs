//! A real browser for the tests: Debian's headless Chromium driven through
//! chromedriver (WebDriver), with screenshots saved under
//! `target/screenshots/` for a person to review.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Chrome {
    pub client: Client,
    driver: Child,
    profile: tempfile::TempDir,
    shots: PathBuf,
    count: u32,
}

/// Where screenshots of `suite` go: `target/screenshots/<suite>/`, next to
/// the build output of the running test binary.
fn screenshot_dir(suite: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test binary>
    let target = exe
        .ancestors()
        .nth(3)
        .context("the test binary is not inside a target directory")?;
    let dir = target.join("screenshots").join(suite);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Chrome {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// that accepts the test server's certificate (issued by a CA the
    /// browser does not know).
    pub async fn start(suite: &str) -> Result<Chrome> {
        for path in [CHROMEDRIVER, CHROMIUM] {
            if !std::path::Path::new(path).exists() {
                bail!("{path} is missing: install Debian's chromium and chromium-driver");
            }
        }
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start chromedriver")?;
        let stdout = driver.stdout.take().context("chromedriver stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let port: u16 = loop {
            let line = lines
                .next_line()
                .await?
                .context("chromedriver exited before it listened")?;
            if let Some((_, rest)) = line.split_once("started successfully on port ") {
                break rest.trim_end_matches('.').trim().parse()?;
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile = tempfile::tempdir()?;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("acceptInsecureCerts".into(), true.into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=900,1000",
                    "--lang=en-US",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": { "intl.accept_languages": "en-US,en" },
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("start a Chromium session")?;
        Ok(Chrome {
            client,
            driver,
            profile,
            shots: screenshot_dir(suite)?,
            count: 0,
        })
    }

    /// Saves a screenshot of the page as `NN-name.png`.
    pub async fn screenshot(&mut self, name: &str) -> Result<PathBuf> {
        self.count += 1;
        let png = self.client.screenshot().await?;
        let path = self.shots.join(format!("{:02}-{name}.png", self.count));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    pub async fn text_of(&self, css: &str) -> Result<String> {
        Ok(self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css} on the page"))?
            .text()
            .await?)
    }

    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css} on the page"))?
            .send_keys(text)
            .await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        self.client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css} on the page"))?
            .click()
            .await?;
        Ok(())
    }

    /// The page's `<h1>`.
    pub async fn heading(&self) -> Result<String> {
        self.text_of("h1").await
    }

    /// Ends the browser session and chromedriver.
    pub async fn close(mut self) -> Result<()> {
        let closed = self.client.close().await;
        let _ = self.driver.kill().await;
        drop(self.profile);
        closed?;
        Ok(())
    }
}
