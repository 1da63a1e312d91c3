/* Etisk handel Norge CRM: the little behaviour the pages need beyond htmx (loaded from 'self' under the CSP). */

// A form with data-confirm asks before it submits: disabling a user, deleting, voiding, marking as left.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
