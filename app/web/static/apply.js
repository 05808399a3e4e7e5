/* Upload form enhancement: a file goes up as soon as it is chosen, with a progress bar.
   It posts to the same route as the form's "上传所选文件并保存" button (only the token and the file),
   and swaps in the material's block from the page that comes back (files kept, or the error).
   Without this script the button does the same in one post. */
(function () {
  "use strict";
  var form = document.getElementById("apply-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
  var max = parseInt(form.getAttribute("data-max"), 10) || 0;
  var action = form.getAttribute("data-upload");

  function mb(n) {
    return n >= 1048576 ? (n / 1048576).toFixed(1).replace(/\.0$/, "") + " MB" : Math.round(n / 1024) + " KB";
  }

  // What happened to each file of this choice, shown together once the block is swapped in.
  function say(key, notes, text) {
    var status = document.getElementById(key + "-status");
    if (status) { status.textContent = notes.concat(text ? [text] : []).join("；"); }
  }

  function send(input, files, i, notes) {
    var key = input.getAttribute("data-part");
    if (i >= files.length) { return say(key, notes, ""); }
    var file = files[i];
    if (max && file.size > max) {
      notes.push("文件「" + file.name + "」超过 " + mb(max) + "，请压缩或拍摄清晰度较低的照片后重新上传");
      return send(input, files, i + 1, notes);
    }
    var data = new FormData();
    data.append("csrf", form.elements.csrf.value);
    data.append(key, file, file.name);
    var bar = document.getElementById(key + "-progress");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", action);
    xhr.responseType = "document";
    xhr.upload.onprogress = function (e) {
      if (bar && e.lengthComputable) { bar.hidden = false; bar.value = Math.round(e.loaded * 100 / e.total); }
    };
    say(key, notes, "正在上传「" + file.name + "」……");
    xhr.onload = function () {
      var page = xhr.response;
      var fresh = page && page.getElementById("mat-" + key);
      var block = document.getElementById("mat-" + key);
      if (fresh && block) {
        block.parentNode.replaceChild(document.importNode(fresh, true), block);
        var alert = page.querySelector(".alert");
        var err = page.getElementById(key + "-err");
        notes.push(alert ? alert.textContent : (err ? "「" + file.name + "」未能上传" : "已上传「" + file.name + "」"));
      } else {
        if (bar) { bar.hidden = true; }
        return say(key, notes, "登录或页面已过期，请刷新页面后重新上传");
      }
      send(input, files, i + 1, notes);
    };
    xhr.onerror = function () {
      if (bar) { bar.hidden = true; }
      say(key, notes, "上传失败，请检查网络后重试，或点击“上传所选文件并保存”");
    };
    xhr.send(data);
  }

  form.addEventListener("change", function (e) {
    var input = e.target;
    if (!input || input.type !== "file" || !input.getAttribute("data-part") || !input.files.length) { return; }
    var files = Array.prototype.slice.call(input.files);
    input.value = "";  // the file goes up now: the form's own post must not send it again
    send(input, files, 0, []);
  });
})();
