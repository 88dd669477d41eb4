// offgate rider wallet (docs/wallet.md). The rider's P-256 key is made by WebCrypto as
// non-extractable and kept in IndexedDB; codes are built exactly as docs/protocol.md §3-4 says:
// untagged COSE_Sign1 [h'a10126', {}, bstr .cbor {1: cred, 2: iat, 3: ctr}, r||s] -> "OG1:" + base45.
import { encode } from '/vendor/cborg/cborg.js'
import { encode as qrEncode, renderSVG } from '/vendor/uqr/index.mjs'

const DB = 'offgate-wallet'
const REFRESH_MS = 15000          // a shown code is replaced at least this often (QCAT: 15 s)
const RENEW_BEFORE_S = 6 * 3600   // renew when the credential has less than this left (and we are online)
const PROTECTED = new Uint8Array([0xa1, 0x01, 0x26]) // {1: -7}: alg ES256
const B45 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:'
const te = new TextEncoder()

// ------------------------------------------------------------------ IndexedDB
function idb () {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1)
    r.onupgradeneeded = () => r.result.createObjectStore('kv')
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}
async function get (k) {
  const db = await idb()
  return new Promise((resolve, reject) => {
    const r = db.transaction('kv').objectStore('kv').get(k)
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
}
async function put (entries) {
  const db = await idb()
  return new Promise((resolve, reject) => {
    const tx = db.transaction('kv', 'readwrite')
    for (const [k, v] of Object.entries(entries)) tx.objectStore('kv').put(v, k)
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
  })
}
// The counter only rises: read and write it in one transaction and use the value only after the
// write has committed, so a crash can skip a value but never repeat one.
async function nextCtr () {
  const db = await idb()
  return new Promise((resolve, reject) => {
    const tx = db.transaction('kv', 'readwrite')
    const s = tx.objectStore('kv')
    let next
    const r = s.get('ctr')
    r.onsuccess = () => {
      next = (r.result || 0) + 1
      if (next > 0xffffffff) { tx.abort(); return }
      s.put(next, 'ctr')
    }
    tx.oncomplete = () => resolve(next)
    tx.onerror = tx.onabort = () => reject(tx.error || new Error('code counter exhausted'))
  })
}

// ------------------------------------------------------------------ bytes
const hex = b => Array.from(b, x => x.toString(16).padStart(2, '0')).join('')
const unhex = h => new Uint8Array(h.match(/../g).map(x => parseInt(x, 16)))
function concat (...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.length }
  return out
}
export function base45 (b) { // RFC 9285
  let s = ''
  for (let i = 0; i + 1 < b.length; i += 2) {
    let n = b[i] * 256 + b[i + 1]
    const c = n % 45; n = (n - c) / 45
    const d = n % 45; const e = (n - d) / 45
    s += B45[c] + B45[d] + B45[e]
  }
  if (b.length % 2) { const n = b[b.length - 1]; s += B45[n % 45] + B45[Math.floor(n / 45)] }
  return s
}
const sha256 = async b => new Uint8Array(await crypto.subtle.digest('SHA-256', b))
async function sign (key, msg) { // WebCrypto ECDSA returns r||s (IEEE P1363): the COSE form
  return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, msg))
}

// ------------------------------------------------------------------ the code (protocol.md §3)
export async function makeCode (nowMs) {
  const [keys, cred] = [await get('keys'), await get('cred')]
  if (!keys || !cred) throw new Error('no credential: enrol first')
  const ctr = await nextCtr()
  // iat on the server's clock as of the last contact: a phone whose clock is off by more than the
  // gates' skew (30 s) would otherwise make codes they refuse as stale or future
  const iat = Math.floor((nowMs ?? Date.now() + ((await get('clockOffsetMs')) || 0)) / 1000)
  const payload = encode(new Map([[1, unhex(cred.credential)], [2, iat], [3, ctr]]))
  const tbs = encode(['Signature1', PROTECTED, new Uint8Array(0), payload])
  const sig = await sign(keys.privateKey, tbs)
  const code = encode([PROTECTED, new Map(), payload, sig])
  return { code: hex(code), text: 'OG1:' + base45(code), ctr, iat }
}

// ------------------------------------------------------------------ server calls
async function post (path, body) {
  const r = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const j = await r.json().catch(() => ({}))
  if (!r.ok) throw new Error(j.detail || ('HTTP ' + r.status))
  return j
}

export async function enrol (invite) {
  const kp = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
  const pub = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey))
  // receipts (docs/receipts.md) are encrypted to a second key: an ECDSA key cannot do ECDH
  const ek = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])
  const encPub = new Uint8Array(await crypto.subtle.exportKey('raw', ek.publicKey))
  const msg = concat(te.encode('offgate-enrol-v1'), await sha256(te.encode(invite)), pub, encPub)
  const reply = await post('/api/wallet/enrol', {
    invite, pub: hex(pub), enc_pub: hex(encPub), sig: hex(await sign(kp.privateKey, msg))
  })
  // the counter is kept: it never goes back, whatever key or credential comes next
  await put({ keys: kp, encKeys: ek, pub: hex(pub), cred: reply, clockOffsetMs: clockOffset(reply) })
  return reply
}

export async function renew () {
  const [keys, pub] = [await get('keys'), await get('pub')]
  if (!keys) throw new Error('no wallet key: enrol first')
  const t = Math.floor((Date.now() + ((await get('clockOffsetMs')) || 0)) / 1000)
  const tb = new Uint8Array(8); new DataView(tb.buffer).setBigUint64(0, BigInt(t))
  const msg = concat(te.encode('offgate-renew-v1'), tb, unhex(pub))
  const reply = await post('/api/wallet/renew', { pub, t, sig: hex(await sign(keys.privateKey, msg)) })
  await put({ cred: reply, clockOffsetMs: clockOffset(reply) })
  return reply
}

// server time minus this phone's time, in ms; small differences (the request's own latency) are
// taken as none, so a phone with a good clock uses it unchanged
function clockOffset (reply) {
  const d = reply.contact * 1000 - Date.now()
  return Math.abs(d) > 5000 ? d : 0
}

export async function state () {
  return { pub: await get('pub'), cred: await get('cred'), ctr: (await get('ctr')) || 0, keys: await get('keys') }
}

// ------------------------------------------------------------------ UI
const $ = id => document.getElementById(id)
const money = v => (v / 100).toFixed(2)
const iso = t => t ? new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 16) + 'Z' : '-'
let timer = null
let wakeLock = null

function say (t) { $('status').textContent = t }

async function render () {
  const s = await state()
  $('ctr').textContent = s.ctr
  if (!s.cred) { $('enrolled').hidden = true; return }
  $('enrolled').hidden = false
  $('account').textContent = s.cred.account
  $('zones').textContent = s.cred.zones.join(', ')
  $('valid').textContent = iso(s.cred.exp) + (s.cred.exp <= Date.now() / 1000 ? ' (expired: renew)' : '')
  $('balance').textContent = money(s.cred.balance) + ' (' + iso(s.cred.contact) + ')'
  renderReceipts(s.cred.receipts || [])
}

// Hook for receipts (issue #15): the server lists them in every enrol/renew reply.
export function renderReceipts (list) {
  $('receipts').hidden = !list.length
  $('receipt-list').replaceChildren(...list.map(r => {
    const li = document.createElement('li'); li.textContent = JSON.stringify(r); return li
  }))
}

async function showCode () {
  if (document.visibilityState !== 'visible' || $('qr-screen').hidden) return
  try {
    const c = await makeCode()
    const qr = qrEncode(c.text, { ecc: 'M', border: 4 })
    $('qr').innerHTML = renderSVG(c.text, { ecc: 'M', border: 4, pixelSize: 8 })
    $('qr').dataset.text = c.text
    $('qr').dataset.version = qr.version
    $('qr').dataset.ctr = c.ctr
    $('qr-info').textContent = 'code ' + c.ctr + ' · ' + new Date(c.iat * 1000).toLocaleTimeString()
    $('ctr').textContent = c.ctr
  } catch (e) { say(e.message) }
}

async function openQr () {
  $('qr-screen').hidden = false
  await showCode()
  clearInterval(timer)
  timer = setInterval(showCode, REFRESH_MS)
  try { wakeLock = await navigator.wakeLock?.request('screen') } catch (e) { /* not granted: fine */ }
}

function closeQr () {
  $('qr-screen').hidden = true
  clearInterval(timer); timer = null
  wakeLock?.release?.(); wakeLock = null
}

async function maybeRenew () {
  const s = await state()
  if (!s.cred || !navigator.onLine) return
  if (s.cred.exp - Date.now() / 1000 < RENEW_BEFORE_S) {
    try { await renew(); say('Credential renewed.') } catch (e) { say('Renewal failed: ' + e.message) }
  }
}

async function main () {
  $('show').onclick = openQr
  $('hide').onclick = closeQr
  $('renew').onclick = async () => {
    try { await renew(); say('Credential renewed.') } catch (e) { say('Renewal failed: ' + e.message) }
    await render()
  }
  document.addEventListener('visibilitychange', async () => {
    if (document.visibilityState === 'visible' && !$('qr-screen').hidden) {
      await showCode()
      try { wakeLock = await navigator.wakeLock?.request('screen') } catch (e) {}
    }
  })
  window.addEventListener('focus', showCode)
  const net = () => { $('net').textContent = navigator.onLine ? 'online' : 'offline' }
  window.addEventListener('online', net); window.addEventListener('offline', net); net()
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/wallet/sw.js', { scope: '/wallet/' }).catch(() => {})

  const invite = new URLSearchParams(location.hash.slice(1)).get('invite')
  if (invite) {
    history.replaceState(null, '', location.pathname) // the link is single-use: do not keep it around
    say('Enrolling…')
    try { await enrol(invite); say('Enrolled.') } catch (e) { say('Enrolment failed: ' + e.message) }
  } else {
    const s = await state()
    say(s.cred ? 'Ready.' : 'Not enrolled. Open the enrolment link staff gave you.')
    await maybeRenew()
  }
  await render()
  document.body.dataset.ready = '1'
}

window.offgateWallet = { makeCode, state, renew, enrol, base45 }
main()
