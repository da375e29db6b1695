// archiver serve: the player bar, its queue and keyboard shortcuts, and auto-applied filters.
// Plain JavaScript, no build step and no third-party code; text is only ever set with textContent.
"use strict";

(function () {
  const audio = document.getElementById("audio");
  const toggle = document.getElementById("toggle");
  const prev = document.getElementById("prev");
  const next = document.getElementById("next");
  const seek = document.getElementById("seek");
  const volume = document.getElementById("volume");
  const now = document.getElementById("now");
  const elapsed = document.getElementById("elapsed");
  const total = document.getElementById("duration");
  const queueInfo = document.getElementById("queue-info");
  const STORE = "archiver-player";
  let queue = [];
  let index = -1;
  let seeking = false;

  function clock(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "0:00";
    const s = Math.floor(seconds);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function pageQueue() {
    return Array.from(document.querySelectorAll("main button.play[data-src]")).map(function (b) {
      return { src: b.dataset.src, title: b.dataset.title, href: b.dataset.href };
    });
  }

  function show() {
    const item = queue[index];
    now.textContent = "";
    if (item) {
      const link = document.createElement("a");
      link.href = item.href;
      link.textContent = item.title;
      now.append("Now playing: ", link);
    } else {
      now.textContent = "Nothing playing";
    }
    queueInfo.textContent = queue.length ? (index + 1) + " of " + queue.length : "";
    prev.disabled = index <= 0;
    next.disabled = index < 0 || index >= queue.length - 1;
    document.querySelectorAll("main button.play").forEach(function (b) {
      b.classList.toggle("current", !!item && b.dataset.src === item.src);
    });
  }

  function setPlaying(playing) {
    toggle.classList.toggle("playing", playing);
    toggle.setAttribute("aria-label", playing ? "Pause" : "Play");
  }

  function load(i, start, autoplay) {
    if (i < 0 || i >= queue.length) return;
    index = i;
    audio.src = queue[i].src;
    if (start) {
      audio.addEventListener("loadedmetadata", function once() {
        audio.removeEventListener("loadedmetadata", once);
        audio.currentTime = start;
      });
    }
    show();
    if (autoplay) audio.play().catch(function () { setPlaying(false); });
  }

  function playFrom(list, i) {
    queue = list;
    load(i, 0, true);
  }

  function togglePlay() {
    if (index < 0) {
      const list = pageQueue();
      if (list.length) playFrom(list, 0);
      return;
    }
    if (audio.paused) audio.play(); else audio.pause();
  }

  function step(delta) {
    if (index + delta >= 0 && index + delta < queue.length) load(index + delta, 0, true);
  }

  function seekBy(seconds) {
    if (!isFinite(audio.duration)) return;
    audio.currentTime = Math.min(Math.max(0, audio.currentTime + seconds), audio.duration);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.play[data-src]");
    if (!button) return;
    const list = pageQueue();
    let i = list.findIndex(function (item) { return item.src === button.dataset.src; });
    if (i < 0) { list.push({ src: button.dataset.src, title: button.dataset.title, href: button.dataset.href }); i = list.length - 1; }
    if (index >= 0 && queue[index] && queue[index].src === button.dataset.src) { togglePlay(); return; }
    playFrom(list, i);
  });

  const playAll = document.getElementById("play-all");
  if (playAll) playAll.addEventListener("click", function () {
    // every result, not only this page; the page's own clips if the list cannot be had
    fetch(playAll.dataset.queue, { credentials: "same-origin" })
      .then(function (answer) { if (!answer.ok) throw new Error(answer.status); return answer.json(); })
      .then(function (list) { if (Array.isArray(list) && list.length) playFrom(list, 0); else throw new Error("empty"); })
      .catch(function () { const list = pageQueue(); if (list.length) playFrom(list, 0); });
  });
  toggle.addEventListener("click", togglePlay);
  prev.addEventListener("click", function () { step(-1); });
  next.addEventListener("click", function () { step(1); });

  audio.addEventListener("play", function () { setPlaying(true); });
  audio.addEventListener("pause", function () { setPlaying(false); });
  audio.addEventListener("ended", function () { if (index < queue.length - 1) step(1); else setPlaying(false); });
  audio.addEventListener("loadedmetadata", function () {
    seek.max = isFinite(audio.duration) ? audio.duration : 0;
    total.textContent = clock(audio.duration);
  });
  audio.addEventListener("timeupdate", function () {
    if (!seeking) seek.value = audio.currentTime;
    elapsed.textContent = clock(audio.currentTime);
  });
  seek.addEventListener("input", function () { seeking = true; elapsed.textContent = clock(Number(seek.value)); });
  seek.addEventListener("change", function () { audio.currentTime = Number(seek.value); seeking = false; });
  volume.addEventListener("input", function () { audio.volume = Number(volume.value); });

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    const typing = target.closest && target.closest("input, select, textarea, button, a, [contenteditable]");
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === " " && !typing) { event.preventDefault(); togglePlay(); }
    else if (event.key === "ArrowRight" && !(typing && target.matches("input, select, textarea"))) {
      event.preventDefault(); if (event.shiftKey) step(1); else seekBy(10);
    } else if (event.key === "ArrowLeft" && !(typing && target.matches("input, select, textarea"))) {
      event.preventDefault(); if (event.shiftKey) step(-1); else seekBy(-10);
    }
  });

  // Filters apply as soon as they change (the Apply button does the same without JavaScript).
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.requestSubmit(); });
  });

  // The queue and position survive moving between pages of the app.
  window.addEventListener("pagehide", function () {
    if (index < 0) return;
    sessionStorage.setItem(STORE, JSON.stringify({ queue: queue, index: index, time: audio.currentTime,
                                                    playing: !audio.paused, volume: audio.volume }));
  });
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "null");
    if (saved && Array.isArray(saved.queue) && saved.queue[saved.index]) {
      queue = saved.queue.filter(function (item) { return typeof item.src === "string" && item.src.charAt(0) === "/" && item.src.charAt(1) !== "/"; });
      audio.volume = volume.value = saved.volume || 1;
      load(Math.min(saved.index, queue.length - 1), saved.time || 0, !!saved.playing);
    }
  } catch (e) { sessionStorage.removeItem(STORE); }
  setPlaying(false);
  show();
})();
