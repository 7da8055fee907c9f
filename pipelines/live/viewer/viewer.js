// facecast live viewer: drives an avatar (GLB or VRM from ./avatar) with the frames facecast sends over a
// WebSocket (./ws on the page's own host and port, or ?ws=<url>), shows the camera picture and a few curves.
// The message format is documented in facecast/pipelines/live/senders/websocket.py.
import * as THREE from 'three';
import {GLTFLoader} from 'three/addons/loaders/GLTFLoader.js';
import {OrbitControls} from 'three/addons/controls/OrbitControls.js';
import {VRMLoaderPlugin} from '@pixiv/three-vrm';

const HISTORY_MS = 5000;
const CURVES = [['jawOpen', '#e06c75'], ['eyeBlinkLeft', '#61afef'], ['eyeBlinkRight', '#56b6c2'],
  ['mouthSmileLeft', '#98c379'], ['browInnerUp', '#e5c07b'], ['head yaw', '#c678dd']];

const view = document.getElementById('view'), curves = document.getElementById('curves');
const picture = document.getElementById('camera'), statusLine = document.getElementById('status');
const three = {scene: new THREE.Scene(), camera: new THREE.PerspectiveCamera(30, 1, 0.01, 100), renderer: null};
const timer = new THREE.Timer();  // seconds between frames, for a VRM's spring bones
let names = null, avatar = null, last = null, error = '', dirty = true;  // dirty: the 3D view needs drawing
const history = [];

// The ARKit name (lower case) a morph target or expression stands for, as facecast.transfer.rigs.match_target_name
// reads it: "blendShape1.jawOpen" -> "jawopen", "BS_EyeBlink_L" -> "eyeblinkleft".
function arkitKey(name) {
  let key = String(name).split(/[.:|]/).pop().trim().toLowerCase();
  for (let stripped = true; stripped;) {
    stripped = false;
    for (const prefix of ['bs_', 'arkit_', 'facial_']) {
      if (key.startsWith(prefix) && key.length > prefix.length) { key = key.slice(prefix.length); stripped = true; }
    }
  }
  return key.replace(/_l$/, 'left').replace(/_r$/, 'right');
}

function morphMeshes(root) {
  const meshes = [];
  root.traverse(o => { if (o.isMesh && o.morphTargetDictionary) meshes.push(o); });
  return meshes;
}

// What turns with the head: a VRM's humanoid head bone; else a node named like a head bone, the one node
// holding the morph meshes, or the root.
function headOf(root, vrm, meshes) {
  if (vrm) return vrm.humanoid.getNormalizedBoneNode('head');
  let head = null;
  root.traverse(o => { if (!head && !o.isMesh && /(^|[^a-z])head$/i.test(o.name)) head = o; });
  if (head) return head;
  const holder = m => m.parent !== root && m.parent.children.every(c => c.isMesh) ? m.parent : m;  // multi-primitive
  const holders = new Set(meshes.map(holder));
  return holders.size === 1 ? [...holders][0] : root;
}

// Which channel (index into names) drives each morph target and, for a VRM, each perfect-sync expression.
function bind() {
  if (!avatar || !names) return;
  const channel = new Map(names.map((n, i) => [n.toLowerCase(), i]));
  avatar.morphs = avatar.meshes.map(mesh => ({mesh, pairs: Object.entries(mesh.morphTargetDictionary)
    .filter(([target]) => channel.has(arkitKey(target))).map(([target, i]) => [i, channel.get(arkitKey(target))])}))
    .filter(m => m.pairs.length);
  const custom = avatar.vrm?.expressionManager?.customExpressionMap || {};
  avatar.expressions = Object.keys(custom).filter(n => channel.has(arkitKey(n)))
    .map(n => [n, channel.get(arkitKey(n))]);
  const meshes = `${avatar.morphs.length} mesh(es) with ARKit morph targets`;
  avatar.summary = !avatar.vrm ? `GLB: ${meshes}`
    : avatar.expressions.length ? `VRM, perfect sync: ${avatar.expressions.length} ARKit expressions`
      : avatar.morphs.length ? `VRM: ${meshes}` : 'VRM, presets';
}

function apply(message) {
  if (!avatar || !names) return;
  const weights = message.arkit, vrm = avatar.vrm;
  const turn = new THREE.Quaternion().fromArray(message.rotation || [0, 0, 0, 1]);
  // the turn is in the world (camera) frame: carry it into the head's parent frame, then onto its rest
  avatar.head.quaternion.copy(avatar.parentRest).invert().multiply(turn).multiply(avatar.parentRest)
    .multiply(avatar.rest);
  for (const {mesh, pairs} of avatar.morphs) {
    for (const [target, c] of pairs) mesh.morphTargetInfluences[target] = weights[c];
  }
  if (vrm) {  // perfect-sync expressions if it has them, else its ARKit morph targets (above), else the presets
    const expressions = vrm.expressionManager;
    if (expressions && avatar.expressions.length) {
      for (const [name, c] of avatar.expressions) expressions.setValue(name, weights[c]);
    } else if (expressions && !avatar.morphs.length) {
      for (const [name, w] of Object.entries(message.presets || {})) expressions.setValue(name, w);
    }
    if (vrm.lookAt && !avatar.expressions.length && message.gaze) {  // radians, left eye then right
      vrm.lookAt.yaw = THREE.MathUtils.radToDeg((message.gaze[0] + message.gaze[3]) / 2);
      vrm.lookAt.pitch = THREE.MathUtils.radToDeg((message.gaze[1] + message.gaze[4]) / 2);
    }
    timer.update();
    vrm.update(Math.min(timer.getDelta(), 0.1));
  }
  dirty = true;
}

async function loadAvatar() {
  const loader = new GLTFLoader();
  loader.register(parser => new VRMLoaderPlugin(parser));
  const gltf = await loader.loadAsync('avatar');
  const vrm = gltf.userData.vrm || null;
  if (vrm?.meta?.metaVersion === '0') vrm.scene.rotation.y = Math.PI;  // VRM 0.x faces -z
  const root = vrm ? vrm.scene : gltf.scene;
  three.scene.add(root);
  root.updateMatrixWorld(true);
  const meshes = morphMeshes(root), head = headOf(root, vrm, meshes);
  const parentRest = head.parent ? head.parent.getWorldQuaternion(new THREE.Quaternion()) : new THREE.Quaternion();
  const probe = vrm ? vrm.humanoid.getRawBoneNode('head') : head;  // what rotation() reports
  avatar = {vrm, root, meshes, head, rest: head.quaternion.clone(), parentRest, morphs: [], expressions: [],
    probe, probeRest: probe.getWorldQuaternion(new THREE.Quaternion())};
  const box = vrm ? new THREE.Box3().setFromCenterAndSize(
    head.getWorldPosition(new THREE.Vector3()).add(new THREE.Vector3(0, 0.06, 0)), new THREE.Vector3(0.3, 0.3, 0.3))
    : new THREE.Box3().setFromObject(root, true);
  aim(box);
  bind();
  if (last) apply(last);
  window.facecastViewer.ready = true;
}

function aim(box) {
  const center = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1e-3);
  three.camera.near = radius / 50;
  three.camera.far = radius * 50;
  three.camera.position.copy(center).add(new THREE.Vector3(0, 0, 1.05 * radius / Math.sin(Math.PI / 12)));
  three.camera.updateProjectionMatrix();
  if (three.controls) { three.controls.target.copy(center); three.controls.update(); }
  dirty = true;
}

function receive(message) {
  if (message.type === 'hello') { names = message.names; bind(); return; }
  const viewer = window.facecastViewer;
  viewer.frames += 1;
  viewer.lastIndex = message.index;
  last = message;
  apply(message);
  if (message.image) picture.src = message.image;
  const weight = name => names ? message.arkit[names.indexOf(name)] ?? 0 : 0;
  const yaw = new THREE.Euler().setFromQuaternion(new THREE.Quaternion().fromArray(message.rotation), 'YXZ').y;
  const values = [...CURVES.slice(0, -1).map(([name]) => weight(name)), 0.5 + yaw / Math.PI];
  history.push({t: performance.now(), values});
  statusLine.textContent = `frame ${message.index}  t ${message.time.toFixed(2)} s  ` +
    `${message.detected ? 'face' : 'no face'}\n${avatar ? avatar.summary : error || 'loading avatar…'}`;
}

function drawCurves() {
  const g = curves.getContext('2d'), w = curves.width, h = curves.height, now = performance.now();
  while (history.length && now - history[0].t > HISTORY_MS) history.shift();
  g.clearRect(0, 0, w, h);
  g.strokeStyle = '#2e3b4a';
  for (const level of [0, 0.5, 1]) { g.beginPath(); g.moveTo(0, y(level)); g.lineTo(w, y(level)); g.stroke(); }
  CURVES.forEach(([label, colour], k) => {
    g.strokeStyle = g.fillStyle = colour;
    g.beginPath();
    history.forEach((s, i) => g[i ? 'lineTo' : 'moveTo'](w - (now - s.t) / HISTORY_MS * w, y(s.values[k])));
    g.stroke();
    g.fillText(label, 4 + (k % 3) * 105, 12 + Math.floor(k / 3) * 13);
  });
  function y(v) { return h - 4 - v * (h - 36); }  // weights 0..1; yaw -90..90 degrees
}

function render() {
  const r = three.renderer, width = view.clientWidth, height = view.clientHeight;
  if (!r || !width || !height) return;
  if (view.width !== Math.round(width * devicePixelRatio) || view.height !== Math.round(height * devicePixelRatio)) {
    r.setSize(width, height, false);
    three.camera.aspect = width / height;
    three.camera.updateProjectionMatrix();
  }
  r.render(three.scene, three.camera);
  dirty = false;
}

function setUpScene() {
  three.scene.background = new THREE.Color(0x1e2a38);
  const light = new THREE.DirectionalLight(0xffffff, 2.0);
  light.position.set(1, 1, 2);
  three.scene.add(light, new THREE.HemisphereLight(0xffffff, 0x404040, 2.0));
  try {
    three.renderer = new THREE.WebGLRenderer({canvas: view, antialias: true});
    three.renderer.setPixelRatio(devicePixelRatio);
    three.controls = new OrbitControls(three.camera, view);
    three.controls.addEventListener('change', () => { dirty = true; });
    new ResizeObserver(() => { dirty = true; }).observe(view);
  } catch (e) { error = 'no WebGL: ' + (e.message || e); }
}

function connect() {
  const url = new URLSearchParams(location.search).get('ws')
    || new URL('ws', location.href).href.replace(/^http/, 'ws');  // same host and port, path /ws
  const socket = new WebSocket(url);
  socket.onopen = () => { statusLine.textContent = `connected to ${url}: waiting for frames`; };
  socket.onmessage = event => receive(JSON.parse(event.data));
  socket.onclose = () => {
    statusLine.textContent = `not connected to ${url}, retrying…`;
    setTimeout(connect, 1000);
  };
}

window.facecastViewer = {
  frames: 0, lastIndex: -1, ready: false,
  error: () => error,
  // {mesh name: {target name: influence}} of every mesh with morph targets
  influences() {
    const out = {};
    for (const mesh of avatar ? avatar.meshes : []) {
      let name = mesh.name || 'mesh';
      while (name in out) name += '+';
      out[name] = Object.fromEntries(Object.entries(mesh.morphTargetDictionary)
        .map(([target, i]) => [target, mesh.morphTargetInfluences[i]]));
    }
    return out;
  },
  // xyzw world rotation of the turned node (a VRM's raw head bone) relative to its rest
  rotation() {
    if (!avatar) return null;
    avatar.root.updateMatrixWorld(true);
    const now = avatar.probe.getWorldQuaternion(new THREE.Quaternion());
    return now.multiply(avatar.probeRest.clone().invert()).toArray();
  },
  // the 3D view rendered now, as a PNG data URL
  snapshot() { render(); return view.toDataURL('image/png'); },
};

setUpScene();
connect();
loadAvatar().catch(e => {
  error = e.response?.status === 404 ? 'no avatar: the server was given none' : 'avatar: ' + (e.message || e);
  statusLine.textContent = error;
  console.error(e);
});
(function loop() { if (dirty) render(); drawCurves(); requestAnimationFrame(loop); })();  // 3D only when changed
