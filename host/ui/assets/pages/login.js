// Login: a token exchanged for the session cookie (POST /ui/login). The
// token is not kept anywhere by the page; the HttpOnly cookie holds it.
import * as api from '../lib/api.js';
import { h, field, errorBox, showError } from '../lib/dom.js';

export async function render(ctx) {
  ctx.setTitle('Log in');
  const input = h('input', { type: 'password', name: 'token', id: 'login-token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = errorBox();
  error.id = 'login-error';
  input.setAttribute('aria-describedby', 'login-error');
  const submit = h('button', { type: 'submit', class: 'button' }, 'Log in');
  const form = h(
    'form',
    { class: 'form login-form', novalidate: true },
    field('Token', input, 'An API token (qrn_…) of an admin, developer or operator: from `quern up` on first start, `quern token create`, or an admin.'),
    error,
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) {
      showError(error, 'Enter a token.');
      input.focus();
      return;
    }
    submit.disabled = true;
    showError(error, '');
    try {
      await api.post('/ui/login', { token }, { quiet401: true });
      const me = await api.get('/api/me', { quiet401: true });
      input.value = '';
      ctx.loggedIn(me);
      const next = ctx.query.get('next');
      ctx.navigate(next && next.startsWith('/') && !next.startsWith('/login') ? '#' + next : '#/');
    } catch (err) {
      showError(error, loginMessage(err));
      input.focus();
      input.select();
    } finally {
      submit.disabled = false;
    }
  });
  ctx.root.append(
    h(
      'div',
      { class: 'login' },
      h('h1', null, 'Log in to Quern'),
      h('p', { class: 'muted' }, 'The session lasts until you log out, the token expires or is revoked.'),
      form,
    ),
  );
  input.focus();
}

function loginMessage(err) {
  if (err.status === 401) return `That token is not valid: ${err.message}.`;
  if (err.status === 403) return `This token cannot log in: ${err.message}.`;
  return `Login failed: ${err.message}`;
}
