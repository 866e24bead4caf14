// civicshare's JavaScript: it only improves pages that work without it. Loaded as a module, never inline,
// so the Content Security Policy can refuse every inline script but govuk-frontend's one hashed check.

async function startGovukFrontend () {
  if (!document.body.classList.contains('govuk-frontend-supported')) return
  try {
    const { initAll } = await import('/web/static/govuk/govuk-frontend.min.js')
    initAll()
  } catch (error) {
    // Without the GOV.UK Frontend files (not installed) the pages still work, unstyled.
    console.warn('civicshare: GOV.UK Frontend JavaScript is not available', error)
  }
}

// Warn 5 minutes before the session ends for want of activity, and let the person stay signed in
// (WCAG 2.2 success criterion 2.2.1, Timing adjustable). The server keeps the real clock; this one
// starts when the page loads, which the server counted as activity.
const WARN_BEFORE_SECONDS = 5 * 60

function startTimeoutWarning () {
  const dialog = document.getElementById('civicshare-timeout')
  if (!dialog || typeof dialog.showModal !== 'function') return
  const idle = Number(dialog.dataset.idleSeconds)
  let left = Number(dialog.dataset.leftSeconds)
  if (!(idle > 0) || !(left > 0)) return
  let started = Date.now()
  let warnTimer, endTimer

  function schedule () {
    clearTimeout(warnTimer)
    clearTimeout(endTimer)
    const ends = Math.min(idle, left)
    warnTimer = setTimeout(warn, Math.max(0, ends - WARN_BEFORE_SECONDS) * 1000)
    endTimer = setTimeout(signedOut, ends * 1000)
  }

  function warn () {
    const secondsLeft = Math.min(idle, left) - (Date.now() - started) / 1000
    const minutes = Math.max(1, Math.round(secondsLeft / 60))
    dialog.querySelector('[data-timeout-minutes]').textContent = minutes === 1 ? '1 minute' : minutes + ' minutes'
    if (!dialog.open) dialog.showModal()
  }

  function signedOut () {
    const here = window.location.pathname + window.location.search
    window.location.assign('/web/sign-in?next=' + encodeURIComponent(here))
  }

  dialog.querySelector('form[data-keep-alive]').addEventListener('submit', async (event) => {
    event.preventDefault()
    const form = event.currentTarget
    try {
      const response = await fetch(form.action, {
        method: 'POST', body: new URLSearchParams(new FormData(form)), credentials: 'same-origin'
      })
      if (!response.ok) throw new Error('status ' + response.status)
    } catch (error) {
      signedOut() // the session had already ended
      return
    }
    left -= (Date.now() - started) / 1000
    started = Date.now()
    dialog.close()
    schedule()
  })
  schedule()
}

startGovukFrontend()
startTimeoutWarning()
