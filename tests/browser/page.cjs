// Browser test of medlink's web page: starts `medlink serve` on a free loopback port, drives
// the system Chromium with puppeteer-core, and saves screenshots under target/browser/.
// Run through tests/browser/run.sh (which installs the client); exits non-zero on failure.
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "../..");
const nodeDir = process.env.MEDLINK_BROWSER_NODE || path.join(root, "target/browser-node");
const puppeteer = require(require.resolve("puppeteer-core", { paths: [nodeDir] }));
const binary = process.env.MEDLINK_BIN || path.join(root, "target/release/medlink");
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = path.join(root, "target/browser");
fs.mkdirSync(shots, { recursive: true });

function fail(message) {
  console.error("browser test FAILED: " + message);
  process.exitCode = 1;
  throw new Error(message);
}

/** Starts the server; resolves with its address once it says it is ready. */
function startServer() {
  // The documented main job: `medlink serve` on the default HPO index (built on first use).
  const args = ["serve", "--addr", "127.0.0.1:0", ...(process.env.MEDLINK_SERVE_ARGS || "").split(" ").filter(Boolean)];
  const child = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const ready = new Promise((resolve, reject) => {
    let addr = null;
    const timer = setTimeout(() => reject(new Error("server not ready in 15 min:\n" + log)), 15 * 60 * 1000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = log.match(/listening on http:\/\/([0-9.:]+)\//);
      if (m) addr = m[1];
      if (addr && /ready in/.test(log)) { clearTimeout(timer); resolve(addr); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log}`)); });
  });
  return { child, ready, log: () => log };
}

async function main() {
  const server = startServer();
  const addr = await server.ready;
  const base = `http://${addr}/`;
  console.log("server at " + base);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.setViewport({ width: 1280, height: 860 });
    await page.goto(base, { waitUntil: "networkidle0" });

    // Search as you type: "big head" -> Macrocephaly at the top.
    await page.focus("#q");
    await page.keyboard.type("big head", { delay: 40 });
    await page.waitForFunction(() => {
      const first = document.querySelector("#results .result .name");
      return first && first.textContent === "Macrocephaly";
    }, { timeout: 20000 }).catch(() => fail("Macrocephaly is not the first result for 'big head'"));
    await page.screenshot({ path: path.join(shots, "search.png") });

    // Keyboard only: Enter opens the first result's concept view.
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => {
      const h = document.querySelector("#concept-name");
      return h && h.textContent === "Macrocephaly";
    }, { timeout: 10000 }).catch(() => fail("the concept view did not open Macrocephaly"));
    const view = await page.evaluate(() => ({
      id: document.querySelector("#concept .idline code").textContent,
      sections: [...document.querySelectorAll("#concept h3")].map((h) => h.textContent),
      copy: !!document.querySelector("#copy-id"),
    }));
    if (view.id !== "HP:0000256") fail("concept id is " + view.id);
    for (const s of ["Synonyms", "Parents", "Children", "Cross-references"]) {
      if (!view.sections.some((t) => t.startsWith(s))) fail("concept view lacks " + s + ": " + view.sections);
    }
    if (!view.copy) fail("no copy-id button");
    await page.screenshot({ path: path.join(shots, "concept.png") });

    // Children are links: open the first one.
    const child = await page.evaluate(() => {
      const h = [...document.querySelectorAll("#concept h3")].find((x) => x.textContent.startsWith("Children"));
      const button = h.nextElementSibling.querySelector("button");
      const name = button.textContent;
      button.click();
      return name;
    });
    await page.waitForFunction((name) => {
      const h = document.querySelector("#concept-name");
      return h && h.textContent === name;
    }, { timeout: 10000 }, child).catch(() => fail("clicking child " + child + " did not open it"));

    // Annotate, when the server has the route.
    const annotate = await page.evaluate(() => !document.querySelector("#tab-annotate").hidden);
    if (annotate) {
      await page.click("#tab-annotate");
      await page.focus("#text");
      await page.keyboard.type("The boy had a big head and recurrent seizures since infancy.");
      await page.click("#annotate");
      await page.waitForSelector("#annotated button.mention", { timeout: 20000 })
        .catch(() => fail("no highlighted mention after annotating"));
      const marks = await page.evaluate(() =>
        [...document.querySelectorAll("#annotated button.mention")].map((b) => b.firstChild.textContent));
      console.log("annotated mentions: " + JSON.stringify(marks));
      await page.waitForFunction(() => document.querySelectorAll("#cand-list .result").length > 0, { timeout: 10000 })
        .catch(() => fail("clicking a mention showed no candidates"));
      await page.screenshot({ path: path.join(shots, "annotate.png") });
    } else {
      console.log("annotate route absent: annotate pane not tested");
    }

    // Phone width: the same search stays readable (one column).
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    await page.goto(base, { waitUntil: "networkidle0" });
    await page.focus("#q");
    await page.keyboard.type("seizures", { delay: 30 });
    await page.waitForSelector("#results .result", { timeout: 20000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    if (overflow) fail("the page scrolls sideways at phone width");
    await page.screenshot({ path: path.join(shots, "phone.png"), fullPage: true });

    if (errors.length) fail("page errors: " + errors.join("; "));
    console.log("browser test passed; screenshots in " + shots);
  } finally {
    await browser.close();
    server.child.kill("SIGTERM");
  }
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exitCode = 1;
});
