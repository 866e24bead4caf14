// Upload progress for the import forms (progressive enhancement: without this script the forms post
// as usual). The form is sent with XMLHttpRequest so that a <progress> bar can follow the upload; the
// answer is then shown as a normal submit would: the new page after a redirect, or the form again with
// its errors (or the suggested mapping to review) in place.

const FORMS = 'form[data-civicshare-upload]'
let counter = 0

function progressArea (form) {
  const area = form.querySelector('[data-upload-progress]')
  if (!area) return null
  counter += 1
  const id = `upload-progress-${counter}`
  const label = document.createElement('label')
  label.className = 'govuk-label govuk-label--s'
  label.htmlFor = id
  label.textContent = 'Upload progress'
  const bar = document.createElement('progress')
  bar.id = id
  bar.max = 100
  bar.value = 0
  bar.textContent = '0%'
  const status = document.createElement('p')
  status.className = 'govuk-body govuk-!-margin-top-2'
  status.setAttribute('role', 'status')
  area.replaceChildren(label, bar, status)
  area.hidden = false
  return { bar, status }
}

async function showPage (page) {
  // The width container holds the back link and the main content: both change with the page.
  const main = page.querySelector('main')
  const current = document.querySelector('main')
  if (!main || !main.parentElement || !current || !current.parentElement) return false
  document.title = page.title
  const fresh = document.importNode(main.parentElement, true)
  current.parentElement.replaceWith(fresh)
  try {
    const { initAll } = await import('/web/static/govuk/govuk-frontend.min.js')
    initAll({ scope: fresh })
  } catch (error) {
    // Without GOV.UK Frontend's script the page still works; only its enhancements are missing.
  }
  enhance(fresh)
  const summary = fresh.querySelector('.govuk-error-summary')
  if (summary) {
    summary.setAttribute('tabindex', '-1')
    summary.focus()
  } else {
    const heading = fresh.querySelector('h1')
    if (heading) {
      heading.setAttribute('tabindex', '-1')
      heading.focus()
    }
  }
  return true
}

function send (form, event) {
  if (!window.FormData || !window.XMLHttpRequest) return
  const shown = progressArea(form)
  if (!shown) return
  event.preventDefault()
  const { bar, status } = shown
  const button = form.querySelector('button[type=submit], button:not([type])')
  if (button) button.disabled = true
  let announced = -1
  const xhr = new XMLHttpRequest()
  xhr.open('POST', form.action)
  xhr.responseType = 'document'
  xhr.upload.addEventListener('progress', (e) => {
    if (!e.lengthComputable) return
    const percent = Math.floor((100 * e.loaded) / e.total)
    bar.value = percent
    bar.textContent = `${percent}%`
    // Screen readers hear every quarter, not every step.
    const quarter = Math.floor(percent / 25)
    if (quarter !== announced) {
      announced = quarter
      status.textContent = `${percent}% uploaded`
    }
  })
  xhr.upload.addEventListener('load', () => {
    bar.value = 100
    status.textContent = 'Uploaded. civicshare is encrypting and checking the file.'
  })
  xhr.addEventListener('load', async () => {
    const target = new URL(form.action, window.location.href).href
    if (xhr.status < 400 && xhr.responseURL && xhr.responseURL !== target) {
      window.location.assign(xhr.responseURL) // redirected: to the new holding's page
      return
    }
    if (!xhr.response || !(await showPage(xhr.response))) {
      status.textContent = 'Something went wrong. Refresh the page and try again.'
      if (button) button.disabled = false
    }
  })
  xhr.addEventListener('error', () => {
    status.textContent = 'The upload stopped before it finished. The file may be larger than this node ' +
      'accepts, or the connection was lost. Check the file and try again.'
    if (button) button.disabled = false
  })
  xhr.send(new FormData(form))
}

function enhance (scope) {
  for (const form of scope.querySelectorAll(FORMS)) {
    form.addEventListener('submit', (event) => send(form, event))
  }
}

enhance(document)
