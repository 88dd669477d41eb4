// offgate wallet service worker: the wallet works offline after enrolment. The server fills in
// the file list and a version (a digest of the files), so a new release replaces the cache.
const VERSION = '__VERSION__'
const PRECACHE = __PRECACHE__
const CACHE = 'offgate-wallet-' + VERSION

self.addEventListener('install', e => {
  e.waitUntil(caches.open(CACHE).then(c => c.addAll(PRECACHE)).then(() => self.skipWaiting()))
})
self.addEventListener('activate', e => {
  e.waitUntil(caches.keys().then(ks => Promise.all(ks.filter(k => k !== CACHE).map(k => caches.delete(k))))
    .then(() => self.clients.claim()))
})
self.addEventListener('fetch', e => {
  const url = new URL(e.request.url)
  if (e.request.method !== 'GET' || url.origin !== location.origin || url.pathname.startsWith('/api/')) return
  // network first (fresh pages when online), the cache when offline
  e.respondWith(fetch(e.request).then(r => {
    if (r.ok) { const copy = r.clone(); caches.open(CACHE).then(c => c.put(e.request, copy)) }
    return r
  }).catch(() => caches.match(e.request, { ignoreSearch: true })))
})
