/* Waiting-room screen: follow the hall's call events (EventSource reconnects by itself, resuming with
   Last-Event-ID) and speak each call in Chinese where the browser has speech synthesis. */
(function () {
  "use strict";
  var root = document.getElementById("display");
  if (!root || !window.EventSource) return;
  var hall = root.getAttribute("data-hall");
  var list = document.getElementById("calls");
  var body = document.getElementById("now-body");
  var status = document.getElementById("status");
  var MAX = 8;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function spoken(no) {
    // "A012" is read letter by letter and digit by digit, as a hall's announcer would.
    return no.split("").join(" ");
  }
  function speak(call) {
    if (!("speechSynthesis" in window) || typeof SpeechSynthesisUtterance === "undefined") return;
    var u = new SpeechSynthesisUtterance("请 " + spoken(call.queue_no) + " 号到 " + call.counter + " 号窗口");
    u.lang = "zh-CN";
    u.rate = 0.9;
    try { window.speechSynthesis.speak(u); } catch (e) { /* no voice: the screen still shows it */ }
  }
  function show(call) {
    body.textContent = "";
    var no = el("p", call.queue_no, "no");
    no.id = "now-no";
    var at = el("p", "请到 ", "at");
    var c = el("span", call.counter);
    c.id = "now-counter";
    at.appendChild(c);
    at.appendChild(document.createTextNode(" 号窗口"));
    body.appendChild(no);
    body.appendChild(at);
    var items = list.querySelectorAll("li");
    for (var i = 0; i < items.length; i++) {
      if (items[i].getAttribute("data-no") === call.queue_no) list.removeChild(items[i]);
    }
    var li = el("li", "");
    li.setAttribute("data-no", call.queue_no);
    li.appendChild(el("span", call.queue_no));
    li.appendChild(el("span", call.counter + " 号窗口", "c"));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX) list.removeChild(list.lastChild);
  }
  function onCall(ev) {
    var call;
    try { call = JSON.parse(ev.data); } catch (e) { return; }
    show(call);
    speak(call);
  }
  var source = new EventSource("/display/" + encodeURIComponent(hall) + "/events?after=" + (root.getAttribute("data-last") || "0"));
  source.addEventListener("call", onCall);
  source.addEventListener("recall", onCall);
  source.onopen = function () { status.textContent = "实时更新"; status.className = ""; };
  source.onerror = function () { status.textContent = "连接中断，正在重新连接…"; status.className = "off"; };

  var clock = document.getElementById("clock");
  function tick() {
    var d = new Date();
    clock.textContent = ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }
  tick();
  setInterval(tick, 10000);
})();
