// Streams an answer into the page from /ask/stream (the chat endpoint's Server-Sent
// Events). Text goes in as text nodes only (never innerHTML), so nothing an answer or a
// source contains can become markup. Without this script the form still works: it
// submits ?q= and the server renders the answer.
"use strict";
(function () {
  var form = document.getElementById("ask");
  var result = document.getElementById("result");
  if (!form || !result || !window.fetch || !window.TextDecoder) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function linkMarkers(target, text, citations) {
    var byN = {};
    citations.forEach(function (c) { byN[c.n] = c; });
    target.textContent = "";
    var re = /\[(\d+)\]/g, pos = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > pos) target.appendChild(document.createTextNode(text.slice(pos, m.index)));
      var c = byN[Number(m[1])];
      var a = el(c && c.url ? "a" : "span", "cite", m[0]);
      if (c && c.url) a.href = c.url;
      target.appendChild(a);
      pos = re.lastIndex;
    }
    if (pos < text.length) target.appendChild(document.createTextNode(text.slice(pos)));
  }

  function sources(citations) {
    var section = el("section", "sources");
    section.appendChild(el("h2", null, "Sources"));
    var ol = el("ol");
    citations.forEach(function (c) {
      var li = el("li");
      li.value = c.n;
      var a = el("a", null, c.title || c.article_id);
      a.href = c.url;
      li.appendChild(a);
      li.appendChild(document.createTextNode(" "));
      var meta = (c.source || "source unknown") + " · " + ((c.published_at || "undated").slice(0, 10));
      li.appendChild(el("span", "meta", meta));
      li.appendChild(el("blockquote", null, "“" + c.quote + "”"));
      ol.appendChild(li);
    });
    section.appendChild(ol);
    return section;
  }

  function fail(message) {
    result.textContent = "";
    result.appendChild(el("p", "error", message));
  }

  form.addEventListener("submit", function (event) {
    var question = document.getElementById("q").value;
    if (!question.trim()) return;
    event.preventDefault();
    history.replaceState(null, "", "/?q=" + encodeURIComponent(question));
    result.textContent = "";
    var answer = el("p", "answer streaming");
    answer.id = "answer";
    result.appendChild(answer);
    var text = "", buffer = "", final = null;
    fetch("/ask/stream", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ question: question })
    }).then(function (response) {
      if (!response.ok) {
        return response.json().then(function (body) {
          fail((body.error && body.error.message) || ("Error " + response.status));
        }, function () { fail("Error " + response.status); });
      }
      var reader = response.body.getReader(), decoder = new TextDecoder();
      function pump() {
        return reader.read().then(function (step) {
          if (step.done) return;
          buffer += decoder.decode(step.value, { stream: true });
          var events = buffer.split("\n\n");
          buffer = events.pop();
          events.forEach(function (event) {
            var data = event.replace(/^data: /, "");
            if (data === "[DONE]") return;
            var chunk = JSON.parse(data);
            var delta = chunk.choices.length ? chunk.choices[0].delta : {};
            if (delta.content) {
              text += delta.content;
              answer.textContent = text;
            }
            if (chunk.citations) final = chunk;
          });
          return pump();
        });
      }
      return pump().then(function () {
        answer.classList.remove("streaming");
        var citations = (final && final.citations) || [];
        if (final && final.newsdesk && final.newsdesk.refused) answer.className = "refused";
        linkMarkers(answer, text, citations);
        if (citations.length) result.appendChild(sources(citations));
        var engine = final ? final.newsdesk.engine : "?";
        result.appendChild(el("p", "engine", "Engine: " + engine + " · citations verified " +
          (final ? final.newsdesk.citations_verified : 0)));
      });
    }).catch(function () { fail("The answer could not be loaded; try again."); });
  });
})();
