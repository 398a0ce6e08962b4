// Entry point of the web client served at /chat/.

import { render } from 'preact';
import { html } from 'htm/preact';
import { App } from './views/app.js';
import { boot, endSession } from './store.js';
import { setSessionLostHandler } from './api.js';
import './style.css';

setSessionLostHandler(endSession);
render(html`<${App} />`, document.getElementById('app'));
boot();
