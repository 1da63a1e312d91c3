/* Etisk handel Norge CRM: the little behaviour the pages need beyond htmx (loaded from 'self' under the CSP). */

// A form with data-confirm asks before it submits: disabling a user, deleting, voiding, marking as left.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

// A button with data-insert-text puts that text into the textarea data-insert-into names, at the cursor
// (replacing a selection), instead of submitting: the reply templates on the case page. Without JavaScript
// the button submits the draft to a view that returns it with the text added, so nothing typed is lost.
document.addEventListener("click", (event) => {
  const button = event.target.closest ? event.target.closest("[data-insert-text]") : null;
  const target = button ? document.getElementById(button.dataset.insertInto) : null;
  if (!target) {
    return;
  }
  event.preventDefault();
  const text = button.dataset.insertText;
  const before = target.value.slice(0, target.selectionStart);
  const after = target.value.slice(target.selectionEnd);
  // Keep the inserted text on lines of its own when the cursor is in the middle of a line.
  const lead = before && !before.endsWith("\n") ? "\n\n" : "";
  const trail = after && !after.startsWith("\n") ? "\n\n" : "";
  target.value = before + lead + text + trail + after;
  const cursor = before.length + lead.length + text.length;
  target.focus();
  target.setSelectionRange(cursor, cursor);
  target.dispatchEvent(new Event("input", { bubbles: true }));
});
