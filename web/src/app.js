// jonction web page: joins a room of the embedded LiveKit-compatible server with livekit-client
// and shows one tile per participant.
//
// URL parameters: /room/<name> or ?room=<name> (room), ?name=<display name>, ?autojoin=1 (join
// at load), ?debug=1 (livekit-client debug logging), ?spc=1 (single peer connection, /rtc/v1).
// For tests: window.jonctionTest and window.jonctionStats().
import { DisconnectReason, Room, RoomEvent, Track, setLogLevel } from 'livekit-client';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

const ui = {
  form: $('join-form'),
  room: $('room'),
  name: $('name'),
  tokenField: $('token-field'),
  token: $('token'),
  join: $('join'),
  leave: $('leave'),
  status: $('status'),
  startAudio: $('start-audio'),
  grid: $('grid'),
  roomLabel: $('room-label'),
};

/** State exposed for tests. */
const test = { room: null, state: 'idle', error: null, publishError: null };
window.jonctionTest = test;

/** identity -> { el, video, nameEl, placeholder, participant, local, videoTrack, audios } */
const tiles = new Map();
const CONNECT_TIMEOUT_MS = 15000;
let leaving = false;

if (params.get('debug') === '1') setLogLevel('debug');

// ---------------------------------------------------------------------------------------------
// helpers

function roomFromLocation() {
  const m = location.pathname.match(/^\/room\/([^/]+)\/?$/);
  if (m) {
    try {
      return decodeURIComponent(m[1]);
    } catch {
      return m[1];
    }
  }
  return params.get('room') ?? '';
}

function randomIdentity() {
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function defaultWsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
}

function setState(state, error = null) {
  test.state = state;
  test.error = error;
  document.body.dataset.state = state;
}

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle('error', isError);
}

function errorText(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  return e.message || String(e);
}

function displayName(p, local) {
  const n = p.name || p.identity || '?';
  return local ? `${n} (you)` : n;
}

// ---------------------------------------------------------------------------------------------
// tiles

function ensureTile(participant) {
  const local = participant === test.room?.localParticipant;
  let t = tiles.get(participant.identity);
  if (t) return t;

  const el = document.createElement('article');
  el.className = 'tile' + (local ? ' local' : ' remote');
  el.dataset.identity = participant.identity;

  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound goes through separate <audio> elements
  video.setAttribute('aria-hidden', 'true');

  const placeholder = document.createElement('div');
  placeholder.className = 'placeholder';
  placeholder.setAttribute('aria-hidden', 'true');

  const nameEl = document.createElement('div');
  nameEl.className = 'name';

  el.append(video, placeholder, nameEl);
  // audios: remote audio track -> its <audio> element
  t = { el, video, nameEl, placeholder, participant, local, videoTrack: null, audios: new Map() };
  tiles.set(participant.identity, t);
  updateTileName(t);

  // local tile first, the others in arrival order
  if (local) ui.grid.prepend(el);
  else ui.grid.append(el);
  return t;
}

function updateTileName(t) {
  const label = displayName(t.participant, t.local);
  t.nameEl.textContent = label;
  t.el.setAttribute('aria-label', label);
  t.placeholder.textContent = (t.participant.name || t.participant.identity || '?')
    .trim()
    .charAt(0)
    .toUpperCase();
}

function removeTile(identity) {
  const t = tiles.get(identity);
  if (!t) return;
  if (t.videoTrack) t.videoTrack.detach(t.video);
  for (const [track, audio] of t.audios) track.detach(audio);
  t.audios.clear();
  t.el.remove();
  tiles.delete(identity);
}

function attachTrack(track, participant) {
  const t = ensureTile(participant);
  if (track.kind === Track.Kind.Video) {
    if (t.videoTrack === track) return;
    if (t.videoTrack) t.videoTrack.detach(t.video);
    t.videoTrack = track;
    track.attach(t.video);
    t.el.classList.add('has-video');
  } else if (track.kind === Track.Kind.Audio && !t.local) {
    // the local microphone is never played back; a track already attached keeps its element
    // (TrackSubscribed can fire during connect() and the publication is seen again after it)
    if (t.audios.has(track)) return;
    const audio = track.attach();
    t.audios.set(track, audio);
    audio.dataset.trackSid = track.sid ?? '';
    t.el.append(audio);
    audio.play().catch(() => updateAudioButton());
  }
}

function detachTrack(track, participant) {
  const t = tiles.get(participant.identity);
  for (const el of track.detach()) {
    if (el.tagName === 'AUDIO') el.remove();
  }
  t?.audios.delete(track);
  if (t && t.videoTrack === track) {
    t.videoTrack = null;
    t.el.classList.remove('has-video');
  }
}

function attachExisting(participant) {
  ensureTile(participant);
  for (const pub of participant.trackPublications.values()) {
    if (pub.track && (pub.isSubscribed ?? true)) attachTrack(pub.track, participant);
  }
}

function updateAudioButton() {
  const room = test.room;
  ui.startAudio.hidden = !room || room.canPlaybackAudio;
}

function clearGrid() {
  for (const id of [...tiles.keys()]) removeTile(id);
  ui.grid.replaceChildren();
}

// ---------------------------------------------------------------------------------------------
// room

function wireRoom(room) {
  room
    .on(RoomEvent.ParticipantConnected, (p) => {
      ensureTile(p);
      setStatus(`${displayName(p, false)} joined`);
    })
    .on(RoomEvent.ParticipantDisconnected, (p) => {
      removeTile(p.identity);
      setStatus(`${displayName(p, false)} left`);
    })
    .on(RoomEvent.ParticipantNameChanged, (_name, p) => {
      const t = tiles.get(p.identity);
      if (t) updateTileName(t);
    })
    .on(RoomEvent.TrackSubscribed, (track, _pub, p) => attachTrack(track, p))
    .on(RoomEvent.TrackUnsubscribed, (track, _pub, p) => detachTrack(track, p))
    .on(RoomEvent.LocalTrackPublished, (pub, p) => {
      if (pub.track) attachTrack(pub.track, p);
    })
    .on(RoomEvent.LocalTrackUnpublished, (pub, p) => {
      if (pub.track) detachTrack(pub.track, p);
    })
    .on(RoomEvent.ActiveSpeakersChanged, (speakers) => {
      const speaking = new Set(speakers.map((s) => s.identity));
      for (const [id, t] of tiles) t.el.classList.toggle('speaking', speaking.has(id));
    })
    .on(RoomEvent.AudioPlaybackStatusChanged, updateAudioButton)
    .on(RoomEvent.Reconnecting, () => setStatus('Connection lost, reconnecting…'))
    .on(RoomEvent.Reconnected, () => setStatus('Reconnected'))
    .on(RoomEvent.Disconnected, (reason) => onDisconnected(room, reason));
}

function onDisconnected(room, reason) {
  if (test.room !== room) return;
  clearGrid();
  ui.grid.hidden = true;
  ui.leave.hidden = true;
  ui.roomLabel.hidden = true;
  ui.startAudio.hidden = true;
  ui.form.hidden = false;
  ui.join.disabled = false;
  if (leaving || reason === DisconnectReason.CLIENT_INITIATED) {
    setState('idle');
    setStatus('Left the room');
  } else {
    const why = `disconnected by the server (${DisconnectReason[reason] ?? reason ?? 'unknown'})`;
    setState('error', why);
    setStatus(why, true);
  }
  leaving = false;
}

async function fetchToken(room, identity, name) {
  const q = new URLSearchParams({ room, identity, name });
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 10000);
  try {
    const res = await fetch(`/api/dev/token?${q}`, { signal: ctl.signal, cache: 'no-store' });
    if (res.status === 404) return null;
    if (!res.ok) {
      const body = (await res.text()).slice(0, 200);
      throw new Error(`token request failed: HTTP ${res.status}${body ? ` – ${body}` : ''}`);
    }
    const json = await res.json();
    if (!json || typeof json.token !== 'string' || !json.token) {
      throw new Error('token request failed: no token in the answer');
    }
    return { token: json.token, url: typeof json.url === 'string' ? json.url : '' };
  } catch (e) {
    if (e.name === 'AbortError') throw new Error('token request timed out');
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

function showTokenField() {
  ui.tokenField.hidden = false;
  ui.token.focus();
}

async function join() {
  if (test.state === 'connecting' || test.state === 'connected') return;
  const roomName = ui.room.value.trim();
  const name = ui.name.value.trim();
  const pasted = ui.tokenField.hidden ? '' : ui.token.value.trim();
  if (!roomName && !pasted) {
    setStatus('Enter a room name.', true);
    ui.room.focus();
    return;
  }

  setState('connecting');
  setStatus('Connecting…');
  ui.join.disabled = true;
  let room = null;
  try {
    let token = pasted;
    let url = '';
    if (!token) {
      const got = await fetchToken(roomName, randomIdentity(), name);
      if (got === null) {
        showTokenField();
        throw new Error('token endpoint disabled (not in development mode): paste a token');
      }
      ({ token, url } = got);
    }

    room = new Room({
      adaptiveStream: false,
      dynacast: false,
      // The embedded server speaks the classic two-peer-connection protocol on /rtc.
      singlePeerConnection: params.get('spc') === '1',
    });
    test.room = room;
    wireRoom(room);
    const wsUrl = url || defaultWsUrl();
    // livekit-client retries some failures (e.g. HTTP 404 on /rtc) without end: bound the wait.
    let timer;
    await Promise.race([
      room.connect(wsUrl, token, { autoSubscribe: true }),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`could not connect to ${wsUrl} within ${CONNECT_TIMEOUT_MS / 1000} s`)),
          CONNECT_TIMEOUT_MS,
        );
      }),
    ]).finally(() => clearTimeout(timer));

    setState('connected');
    ui.form.hidden = true;
    ui.grid.hidden = false;
    ui.leave.hidden = false;
    ui.roomLabel.textContent = `Room: ${room.name || roomName}`;
    ui.roomLabel.hidden = false;
    setStatus(`Connected to ${room.name || roomName}`);

    attachExisting(room.localParticipant);
    for (const p of room.remoteParticipants.values()) attachExisting(p);
    updateAudioButton();

    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      test.publishError = 'insecure context: no camera or microphone';
      setStatus('Connected without camera and microphone: they need HTTPS or localhost.', true);
    } else {
      try {
        await room.localParticipant.enableCameraAndMicrophone();
      } catch (e) {
        test.publishError = errorText(e);
        setStatus(`Connected, but camera/microphone failed: ${errorText(e)}`, true);
      }
    }
  } catch (e) {
    console.error('jonction: join failed', e);
    if (room) {
      test.room = room;
      await room.disconnect().catch(() => {});
    }
    clearGrid();
    ui.form.hidden = false;
    ui.grid.hidden = true;
    ui.leave.hidden = true;
    ui.join.disabled = false;
    setState('error', errorText(e));
    setStatus(errorText(e), true);
  }
}

async function leave() {
  const room = test.room;
  if (!room) return;
  leaving = true;
  ui.leave.disabled = true;
  try {
    await room.disconnect();
  } finally {
    ui.leave.disabled = false;
  }
  // Disconnected normally fires from disconnect(); make sure the page is reset anyway.
  if (test.state === 'connected') onDisconnected(room, DisconnectReason.CLIENT_INITIATED);
}

// ---------------------------------------------------------------------------------------------
// stats for tests

function addInbound(out, report) {
  for (const s of report.values()) {
    if (s.type !== 'inbound-rtp') continue;
    const kind = s.kind ?? s.mediaType;
    if (kind === 'audio') {
      out.inboundAudioBytes += s.bytesReceived ?? 0;
      out.inboundAudioPackets += s.packetsReceived ?? 0;
    } else if (kind === 'video') {
      out.inboundVideoBytes += s.bytesReceived ?? 0;
      out.inboundVideoPackets += s.packetsReceived ?? 0;
      out.framesDecoded += s.framesDecoded ?? 0;
    }
  }
}

function addOutbound(out, report) {
  for (const s of report.values()) {
    if (s.type !== 'outbound-rtp') continue;
    const kind = s.kind ?? s.mediaType;
    if (kind === 'audio') out.outboundAudioBytes += s.bytesSent ?? 0;
    else if (kind === 'video') out.outboundVideoBytes += s.bytesSent ?? 0;
  }
}

/**
 * Media counters summed over every remote track (inbound) and the local ones (outbound), from
 * getStats() of the peer connections; `source` tells which peer connection was read.
 */
window.jonctionStats = async function jonctionStats() {
  const out = {
    inboundAudioBytes: 0,
    inboundVideoBytes: 0,
    inboundAudioPackets: 0,
    inboundVideoPackets: 0,
    framesDecoded: 0,
    outboundAudioBytes: 0,
    outboundVideoBytes: 0,
    remoteTiles: ui.grid.querySelectorAll('.tile.remote').length,
    remoteParticipants: 0,
    subscribedTracks: 0,
    subscriberState: null,
    publisherState: null,
    source: null,
  };
  const room = test.room;
  if (!room) return out;
  out.remoteParticipants = room.remoteParticipants.size;
  const remoteTracks = [];
  for (const p of room.remoteParticipants.values()) {
    for (const pub of p.trackPublications.values()) if (pub.track) remoteTracks.push(pub.track);
  }
  out.subscribedTracks = remoteTracks.length;

  const pcm = room.engine?.pcManager;
  const sub = pcm?.subscriber;
  const pubPc = pcm?.publisher;
  out.subscriberState = sub?.getConnectionState?.() ?? null;
  out.publisherState = pubPc?.getConnectionState?.() ?? null;
  try {
    // Two-PC mode receives on the subscriber; single-PC mode receives on the publisher.
    const receiving = sub ?? pubPc;
    const report = await receiving?.getStats?.();
    if (report) {
      addInbound(out, report);
      out.source = sub ? 'subscriber' : 'publisher';
    } else {
      for (const t of remoteTracks) {
        const r = await t.getRTCStatsReport?.();
        if (r) addInbound(out, r);
      }
      out.source = 'tracks';
    }
    const sent = await pubPc?.getStats?.();
    if (sent) addOutbound(out, sent);
  } catch (e) {
    out.error = errorText(e);
  }
  return out;
};

// ---------------------------------------------------------------------------------------------
// start

ui.room.value = roomFromLocation();
ui.name.value = params.get('name') ?? '';
ui.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  join();
});
ui.leave.addEventListener('click', () => leave());
ui.startAudio.addEventListener('click', async () => {
  await test.room?.startAudio().catch(() => {});
  for (const a of ui.grid.querySelectorAll('audio')) a.play().catch(() => {});
  updateAudioButton();
});
window.addEventListener('pagehide', () => {
  leaving = true;
  test.room?.disconnect();
});
setState('idle');

if (params.get('autojoin') === '1') join();
else if (ui.room.value) ui.name.focus();
else ui.room.focus();
