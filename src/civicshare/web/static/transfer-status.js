// Live transfer status: on a transfer's page, ask the server for the latest status every few seconds and
// update the page in place until the transfer is finished. Without JavaScript the page's refresh link does it.

const POLL_MS = 2000

function showStatus (box, status) {
  const label = box.querySelector('#transfer-status-label')
  const words = box.querySelector('#transfer-status-words')
  const progress = box.querySelector('#transfer-progress')
  if (label) {
    const tag = document.createElement('strong')
    tag.className = 'govuk-tag govuk-tag--' + status.colour
    tag.textContent = status.label
    label.replaceChildren(tag)
  }
  if (words) words.textContent = status.words
  if (progress) {
    progress.value = status.percent
    progress.textContent = status.percent + '%'
  }
}

// Once finished, the receipt and deletion sections are fetched again (the page itself, parsed, never run).
async function refreshDetails () {
  const details = document.getElementById('transfer-details')
  if (!details) return
  try {
    const response = await fetch(window.location.pathname, { credentials: 'same-origin' })
    if (!response.ok) return
    const fresh = new DOMParser().parseFromString(await response.text(), 'text/html').getElementById('transfer-details')
    if (fresh) details.replaceChildren(...fresh.childNodes)
  } catch (error) {
    // The status is shown already; the details follow on the next visit.
  }
}

async function follow (box) {
  const url = box.dataset.statusUrl
  if (!url || box.dataset.finished === 'true') return
  const refresh = document.getElementById('transfer-refresh')
  if (refresh) refresh.hidden = true
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    let status
    try {
      const response = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      if (!response.ok || !(response.headers.get('content-type') || '').includes('application/json')) break
      status = await response.json()
    } catch (error) {
      break
    }
    showStatus(box, status)
    if (status.finished) {
      box.dataset.finished = 'true'
      await refreshDetails()
      return
    }
  }
  // Something went wrong (signed out, network): hand back to the refresh link.
  if (refresh) refresh.hidden = false
}

const box = document.getElementById('transfer-status')
if (box) follow(box)
