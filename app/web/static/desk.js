/* The front desk: scan (the field keeps the focus), walk-in numbers, call next / recall / skip.
   Every call goes to the desk API with the console's own session cookie (same origin); no token in script. */
(function () {
  "use strict";
  var CLASS = {checked_in: "ok", walk_in: "ok", already_checked_in: "warn", too_early: "warn"};
  var VERDICT = {
    checked_in: "签到成功", invalid: "无效预约码", revoked: "预约码已作废", cancelled: "预约已取消",
    wrong_hall: "非本大厅预约", too_early: "未到签到时间", too_late: "已过签到时间", already_checked_in: "已签到过"
  };
  var $ = function (id) { return document.getElementById(id); };
  var root = $("desk-app");
  var hall = root.getAttribute("data-hall");
  var admin = root.getAttribute("data-admin") === "1";
  var counters = {};
  try { counters = JSON.parse(root.getAttribute("data-counters") || "{}"); } catch (e) { counters = {}; }
  var local = window.localStorage;
  var busy = false;

  function nonce() {
    var a = new Uint8Array(12); window.crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function withHall(path) {
    return admin && hall ? path + (path.indexOf("?") < 0 ? "?" : "&") + "hall=" + encodeURIComponent(hall) : path;
  }
  async function api(method, path, body) {
    var r = await fetch(path, {method: method, credentials: "same-origin",
      headers: body ? {"Content-Type": "application/json"} : {}, body: body ? JSON.stringify(body) : undefined});
    if (r.status === 401) {  // the page renews the session from its refresh cookie
      window.location.reload();
      throw new Error("登录已过期，正在重新登录…");
    }
    var data = await r.json().catch(function () { return {}; });
    if (!r.ok) throw new Error((data.error && data.error.message) || ("请求失败（" + r.status + "）"));
    return data;
  }
  function counter() { return $("counter").value.trim(); }
  function render(res) {
    var box = $("result");
    box.className = CLASS[res.result] || "bad";
    box.dataset.result = res.result;
    box.replaceChildren();
    box.appendChild(el("p", VERDICT[res.result] || res.result, "verdict"));
    if (res.queue_no) box.appendChild(el("div", res.queue_no, "queue"));
    box.appendChild(el("p", res.message, "message"));
    if (res.booking) {  // a refusal names its booking too, so the clerk can help
      var b = res.booking, dl = el("dl");
      [["事项", b.matter.name], ["预约人", (b.citizen && (b.citizen.name || b.citizen.phone)) || "—"],
       ["时段", b.date + " " + b.starts_at.slice(11, 16) + "–" + b.ends_at.slice(11, 16)],
       ["板块", b.section_name]].forEach(function (kv) { dl.appendChild(el("dt", kv[0])); dl.appendChild(el("dd", kv[1])); });
      box.appendChild(dl);
    }
    if (res.result === "checked_in" && res.materials && res.materials.length) {
      box.appendChild(el("strong", "请核对材料："));
      var ul = el("ul");
      res.materials.forEach(function (m) {
        ul.appendChild(el("li", m.name + "（" + m.form_name + " " + m.copies + " 份" + (m.required ? "" : "，选交") + "）"));
      });
      box.appendChild(ul);
    }
    if (res.result === "checked_in" && res.checkin_id) {
      var undo = el("button", "撤销本次签到", "btn");
      undo.type = "button"; undo.id = "undo";
      undo.addEventListener("click", async function () {
        try { await api("POST", "/api/v1/desk/checkins/" + res.checkin_id + "/undo");
          box.className = "warn"; box.dataset.result = "undone";
          box.replaceChildren(el("p", "已撤销签到 " + res.queue_no, "verdict")); recent();
        } catch (e) { box.appendChild(el("p", e.message, "error")); }
        $("scan").focus();
      });
      box.appendChild(undo);
    }
  }
  async function recent() {
    if (!hall) return;
    try {
      var data = await api("GET", withHall("/api/v1/desk/checkins"));
      var list = $("recent"); list.replaceChildren();
      data.items.forEach(function (i) {
        var li = el("li"); if (i.undone_at) li.className = "undone";
        li.appendChild(el("b", i.queue_no));
        li.appendChild(el("span", (i.kind === "walk_in" ? "现场" : "预约") + " " + i.created_at.slice(11, 16)));
        list.appendChild(li);
      });
      var q = await api("GET", withHall("/api/v1/desk/queue"));
      $("waiting").textContent = "等候 " + q.waiting.length + " 人";
    } catch (e) { /* the scan result already tells the clerk what went wrong */ }
  }
  // Scans wait their turn: a scanner can fire the next code before the last answer is back.
  var pending = [];
  async function drain() {
    if (busy) return;
    busy = true;
    while (pending.length) {
      var scan = pending.shift();
      try {
        var res = await api("POST", "/api/v1/desk/checkins", scan);
        render(res);
        if (res.result === "checked_in") recent();
      } catch (e) {
        var box = $("result"); box.className = "bad"; box.dataset.result = "error";
        box.replaceChildren(el("p", "扫码未完成", "verdict"), el("p", e.message, "message"));
      }
    }
    busy = false;
    $("scan").focus();
  }
  $("scan-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var ticket = $("scan").value.trim();
    $("scan").value = "";
    if (!ticket) return;
    // The nonce is fixed when the code is read, so a retried request can never check in twice.
    pending.push({ticket: ticket, nonce: nonce(), counter: counter() || null});
    drain();
  });

  // -- walk-in: the counter's own section first (hall counters config), else the last one used --------
  function orderSections() {
    var select = $("walkin-section");
    var own = counters[counter()] || local.getItem("desk_section");
    if (!own) return;
    var option = select.querySelector('option[value="' + own + '"]');
    if (option) { select.insertBefore(option, select.firstChild); select.value = own; }
  }
  $("walkin").addEventListener("click", async function () {
    $("side-error").textContent = "";
    try {
      var section = $("walkin-section").value;
      var t = await api("POST", "/api/v1/desk/tickets", {section: section, counter: counter() || null,
        hall: admin ? hall : null});
      local.setItem("desk_section", section);
      var box = $("result"); box.className = "ok"; box.dataset.result = "walk_in";
      box.replaceChildren(el("p", "现场取号", "verdict"), el("div", t.queue_no, "queue"), el("p", t.section_name, "message"));
      recent();
    } catch (e) { $("side-error").textContent = e.message; }
    $("scan").focus();
  });

  // -- call next (叫号), recall, skip ------------------------------------------------------------------
  function showCalled(entry, note) {
    $("called").textContent = entry ? entry.queue_no : "—";
    $("called-kind").textContent = entry ? (entry.booked ? "预约" : entry.kind === "walk_in" ? "现场" : "") : "";
    $("called-kind").className = entry && entry.booked ? "badge" : "";
    if (note) $("side-error").textContent = note;
  }
  function counterAction(action, pick) {
    return async function () {
      $("side-error").textContent = "";
      var c = counter();
      if (!c) { $("side-error").textContent = "请先填写窗口编号"; $("counter").focus(); return; }
      try {
        var data = await api("POST", withHall("/api/v1/desk/counters/" + encodeURIComponent(c) + "/" + action));
        pick(data);
        recent();
      } catch (e) { $("side-error").textContent = e.message; }
      $("scan").focus();
    };
  }
  $("call-next").addEventListener("click", counterAction("call-next", function (d) {
    showCalled(d.called, d.called ? "" : "当前没有等候的号码");
  }));
  $("recall").addEventListener("click", counterAction("recall", function (d) { showCalled(d.called); }));
  $("skip").addEventListener("click", counterAction("skip", function (d) {
    showCalled(null, "已过号 " + d.skipped.queue_no);
  }));

  // -- the counter number is remembered on this device ---------------------------------------------------
  $("counter").value = local.getItem("desk_counter") || "";
  $("counter").addEventListener("change", function () { local.setItem("desk_counter", counter()); orderSections(); });
  orderSections();
  // A scanner types into whatever has focus: keep the scan field focused unless the clerk is typing elsewhere.
  document.addEventListener("click", function (ev) {
    if (!ev.target.closest("input,select,button,a")) $("scan").focus();
  });
  $("scan").focus();
  recent();
})();
