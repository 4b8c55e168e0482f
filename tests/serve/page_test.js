// Drives the server's page (GET /) in headless Chromium with puppeteer-core: types a text,
// presses a button and prints what the page shows as one JSON line, for test_serve_browser.py to
// check against the server's own answers. Usage:
//   node page_test.js CHROMIUM URL classify|fillmask|attention TEXT [LAYER HEAD] [SCREENSHOT.png]
"use strict";
const puppeteer = require("puppeteer-core");

async function main() {
  const [chromium, url, mode, text, layer, head, shot] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({width: 1000, height: 900});
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("requestfailed", (r) => { if (!r.url().startsWith(url)) errors.push("external request: " + r.url()); });
    await page.goto(url, {waitUntil: "networkidle0", timeout: 30000});
    await page.waitForSelector("#info[data-ready='1']", {timeout: 30000});
    await page.$eval("#text", (el, t) => { el.value = t; }, text);
    const out = {mode, errors, info: await page.$eval("#info", (el) => el.textContent)};
    if (mode === "classify") {
      await page.click("#classify");
      await page.waitForSelector("#label", {timeout: 30000});
      out.label = await page.$eval("#label", (el) => el.textContent);
      out.rows = await page.$$eval("#result tr", (trs) => trs.map((tr) => [...tr.children].slice(0, 2).map((td) => td.textContent)));
    } else if (mode === "fillmask") {
      await page.click("#fillmask");
      // The answers, or an error in #status.
      await page.waitForFunction(() => document.querySelector("#result tr") || document.getElementById("status").textContent,
                                 {timeout: 30000});
      out.rows = await page.$$eval("#result tr", (trs) => trs.map((tr) => [...tr.children].slice(0, 2).map((td) => td.textContent)));
    } else if (mode === "attention") {
      await page.select("#layer", layer);
      await page.select("#head", head);
      await page.click("#attn");
      await page.waitForSelector("#attn-caption", {timeout: 30000});
      out.caption = await page.$eval("#attn-caption", (el) => el.textContent);
      // Pixels of the map that are neither white nor the text's colour: the drawn cells.
      out.cells = await page.$eval("#map", (c) => {
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 2] === 255 && d[i] < 250) ++n;
        return n;
      });
    }
    out.status = await page.$eval("#status", (el) => el.textContent);
    if (shot) await page.screenshot({path: shot, fullPage: true});
    console.log("PAGE " + JSON.stringify(out));
  } finally {
    await browser.close();
  }
}
main().catch((e) => { console.error("page_test: " + (e && e.stack || e)); process.exit(1); });
