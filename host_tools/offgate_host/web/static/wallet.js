// offgate rider wallet (docs/wallet.md). The rider's P-256 key is made by WebCrypto as
// non-extractable and kept in IndexedDB; codes are built exactly as docs/protocol.md §3-4 says:
// untagged COSE_Sign1 [h'a10126', {}, bstr .cbor {1: cred, 2: iat, 3: ctr}, r||s] -> "OG1:" + base45.
import { encode, decode } from '/vendor/cborg/cborg.js'
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
  await addReceipts(reply.receipts) // the wallet's receipts on the server, kept here
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

// ------------------------------------------------------------------ receipts (docs/receipts.md)
// The request is a COSE_Sign1 (tag 18) by the wallet key, as receipts.make_request builds it:
// {1: credential id, 2: from, 3: to | 4: [gate, seq], 5: nonce (16 bytes), 6: iat}.
const TAGS = []
TAGS[18] = TAGS[96] = decode => decode() // COSE_Sign1, COSE_Encrypt: the tag only names the structure
const cbor = b => decode(b, { useMaps: true, tags: TAGS })
const ALG_ECDH_ES_HKDF_256 = -25
const ALG_A256GCM = 3
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i])

// a CBOR map with text keys (the receipt body) as a plain object, nested; bytes stay Uint8Array
function plain (v) {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]))
  if (Array.isArray(v)) return v.map(plain)
  return v
}

export async function makeReceiptRequest ({ from, to, trip }) { // -> hex
  const [keys, cred] = [await get('keys'), await get('cred')]
  if (!keys || !cred) throw new Error('no credential: enrol first')
  const iat = Math.floor((Date.now() + ((await get('clockOffsetMs')) || 0)) / 1000)
  const m = new Map([[1, unhex(cred.cti)], [5, crypto.getRandomValues(new Uint8Array(16))], [6, iat]])
  if (trip) m.set(4, trip); else { m.set(2, from); m.set(3, to) }
  const payload = encode(m)
  const sig = await sign(keys.privateKey, encode(['Signature1', PROTECTED, new Uint8Array(0), payload]))
  return hex(concat(new Uint8Array([0xd2]), encode([PROTECTED, new Map(), payload, sig])))
}

export async function requestReceipt (what) {
  const reply = await post('/api/wallet/receipts', { request: await makeReceiptRequest(what) })
  const failed = await addReceipts(reply.receipts)
  if (failed[reply.id]) throw new Error(failed[reply.id])
  return (await get('receipts')).find(r => r.id === reply.id)
}

// COSE_Encrypt (RFC 9052 §5.1) with one ECDH-ES + HKDF-256 recipient (RFC 9053 §6.3.1), A256GCM
export async function decryptReceipt (enc) {
  const [prot, unprot, ct, recipients] = cbor(enc)
  if (cbor(prot).get(1) !== ALG_A256GCM || recipients.length !== 1) throw new Error('not an A256GCM receipt')
  const [rprot, runprot] = recipients[0]
  const alg = (rprot.length ? cbor(rprot) : runprot).get(1)
  if (alg !== ALG_ECDH_ES_HKDF_256) throw new Error('receipt recipient is not ECDH-ES + HKDF-256')
  const epk = runprot.get(-1) // the sender's ephemeral key (COSE_Key, EC2 P-256)
  const pub = await crypto.subtle.importKey('raw', concat(new Uint8Array([4]), epk.get(-2), epk.get(-3)),
    { name: 'ECDH', namedCurve: 'P-256' }, false, [])
  const ek = await get('encKeys')
  const z = await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, ek.privateKey, 256)
  // COSE_KDF_Context (RFC 9053 §5.2): [AlgorithmID, PartyUInfo, PartyVInfo, [keyDataLength, protected]];
  // protected is the recipient's protected header; receipts made before the back office put alg there
  // have an empty one, and cwt used {1: alg} in the context anyway
  const ctx = encode([ALG_A256GCM, [null, null, null], [null, null, null],
    [256, rprot.length ? rprot : encode(new Map([[1, alg]]))]])
  const ikm = await crypto.subtle.importKey('raw', z, 'HKDF', false, ['deriveKey'])
  const key = await crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: ctx },
    ikm, { name: 'AES-GCM', length: 256 }, false, ['decrypt'])
  const aad = encode(['Encrypt', prot, new Uint8Array(0)]) // Enc_structure, RFC 9052 §5.3
  return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unprot.get(5), additionalData: aad }, key, ct))
}

async function verifySign1 (signed, pub65) { // ES256 COSE_Sign1 -> payload, or throws
  const [prot, , payload, sig] = cbor(signed)
  if (cbor(prot).get(1) !== -7) throw new Error('not ES256')
  const k = await crypto.subtle.importKey('raw', pub65, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify'])
  const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, k, sig,
    encode(['Signature1', prot, new Uint8Array(0), payload]))
  if (!ok) throw new Error('signature does not verify')
  return payload
}

const nodeHash = async (l, r) => sha256(concat(new Uint8Array([1]), l, r))
// RFC 9162 §2.1.3.2: the audit path from leaf `index` leads to `root` of a tree of `size` leaves
async function verifyInclusion (index, size, leaf, path, root) {
  if (index >= size) return false
  let fn = index; let sn = size - 1; let r = leaf
  for (const p of path) {
    if (sn === 0) return false
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r)
      while (fn % 2 === 0 && fn !== 0) { fn /= 2; sn = Math.floor(sn / 2) }
    } else r = await nodeHash(r, p)
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2)
  }
  return sn === 0 && equal(r, root)
}

// the receipt keys (back office, /api/wallet/receipt-keys), kept for verifying offline
async function receiptKeys () {
  try {
    const r = await fetch('/api/wallet/receipt-keys')
    if (r.ok) { const k = await r.json(); await put({ receiptKeys: k }); return k }
  } catch (e) { /* offline: the kept keys */ }
  const k = await get('receiptKeys')
  if (!k) throw new Error('no receipt keys yet (go online once)')
  return k
}

// Open a bundle: decrypt, verify the receipt (receipt key) and its log inclusion under the signed
// tree head (log key). Returns what the wallet keeps: {id, bundle, signed, body, index, size}.
export async function openBundle (bundleHex, keys) {
  const b = plain(cbor(unhex(bundleHex)))
  const signed = await decryptReceipt(b.receipt)
  const body = plain(cbor(await verifySign1(signed, unhex(keys.receipt_pub))))
  if (!equal(body.id, b.id)) throw new Error('bundle and receipt name different receipts')
  const sth = cbor(await verifySign1(b.sth, unhex(keys.log_pub)))
  const leaf = await sha256(concat(new Uint8Array([0]), encode([b.id, await sha256(signed), await sha256(b.receipt)])))
  if (sth.get(2) !== b.size || !await verifyInclusion(b.index, b.size, leaf, b.path, sth.get(3))) {
    throw new Error('receipt is not in the signed log')
  }
  return { id: hex(b.id), bundle: bundleHex, signed: hex(signed), body, index: b.index, size: b.size }
}

// Keep the receipts the server listed ([{id, created, bundle}]) that open and verify; the ones
// already kept only get the newer bundle (a later tree head) once it verifies too.
async function addReceipts (list) { // -> {id: why it was not kept}
  const failed = {}
  if (!list || !list.length) return failed
  const keys = await receiptKeys()
  const kept = (await get('receipts')) || []
  const byId = new Map(kept.map(r => [r.id, r]))
  for (const item of list) {
    const old = byId.get(item.id)
    if (old && old.bundle === item.bundle) continue
    try {
      byId.set(item.id, await openBundle(item.bundle, keys))
    } catch (e) {
      failed[item.id] = 'receipt ' + item.id.slice(0, 8) + ' refused: ' + e.message
      say(failed[item.id])
    }
  }
  const all = [...byId.values()].sort((a, b) => a.index - b.index)
  await put({ receipts: all })
  renderReceipts(all)
  return failed
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
  renderReceipts((await get('receipts')) || [])
}

function el (tag, text, attrs = {}) {
  const e = document.createElement(tag)
  if (text !== undefined) e.textContent = text
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  return e
}

// The kept receipts (IndexedDB, so they show offline): date, stations, total with currency, tax;
// each opens to its trips.
export function renderReceipts (list) {
  $('receipt-list').replaceChildren(...list.map(r => {
    const b = r.body
    const cur = ' ' + b.currency
    const when = b.period ? iso(b.period[0]).slice(0, 10) + ' – ' + iso(b.period[1] - 1).slice(0, 10) : iso(b.trips[0].t)
    const stations = [...new Set(b.trips.map(t => t.station))].join(', ')
    const li = el('li', undefined, { 'data-id': r.id })
    const d = el('details')
    d.append(el('summary', when + ' · ' + stations + ' · ' + money(b.total) + cur + ' (tax ' + money(b.tax.tax) + cur + ')'))
    const tbl = el('table', undefined, { class: 'trips' })
    tbl.append(...b.trips.map(t => {
      const tr = el('tr')
      tr.append(el('td', iso(t.t)), el('td', t.station), el('td', 'gate ' + t.gate + ' #' + t.seq), el('td', money(t.amount) + cur))
      return tr
    }))
    d.append(tbl, el('p', 'Total ' + money(b.total) + cur + ', of which VAT ' + (b.tax.rate_bp / 100) + ' % ' +
      money(b.tax.tax) + cur + ' (net ' + money(b.tax.net) + cur + ').', { class: 'small' }),
    el('p', b.operator.name + (b.operator.tax_id ? ', tax id ' + b.operator.tax_id : '') + ' · issued ' + iso(b.issued) +
      ' · receipt ' + r.id + ' · log entry ' + r.index + ' of ' + r.size + ', signature and inclusion verified', { class: 'small' }))
    li.append(d)
    return li
  }))
}

// "This month" / "Last month": UTC calendar months
function month (back) {
  const n = new Date(); const y = n.getUTCFullYear(); const m = n.getUTCMonth() - back
  return { from: Date.UTC(y, m, 1) / 1000, to: Date.UTC(y, m + 1, 1) / 1000 }
}
async function askReceipt (back) {
  say('Requesting a receipt…')
  try { await requestReceipt(month(back)); say('Receipt received.') } catch (e) { say('Receipt: ' + e.message) }
  await render()
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
  $('receipt-month').onclick = () => askReceipt(0)
  $('receipt-last-month').onclick = () => askReceipt(1)
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

window.offgateWallet = { makeCode, state, renew, enrol, base45, makeReceiptRequest, requestReceipt, decryptReceipt, openBundle, receipts: async () => (await get('receipts')) || [] }
main()
