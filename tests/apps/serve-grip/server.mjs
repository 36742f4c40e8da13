// A WebSocket-over-HTTP origin written the way a user of Fastly's libraries writes one: Express
// with @fanoutio/serve-grip. Used by holdfast's tests/wsoh_apps.rs.
//
//   POST /ws       WebSocket-over-HTTP: accept, subscribe to "room", echo every message.
//   GET  /publish  ?control_uri=..&channel=..&text=..: publishes a ws-message with
//                  @fanoutio/grip's Publisher (its answer says whether the publish succeeded).
//
// Environment: PORT (default 0: any free port), GRIP_VERIFY_KEY and GRIP_VERIFY_ISS (when set,
// a /ws request whose Grip-Sig does not verify gets 403). Prints "listening <port>" on stdout
// once ready.
//
// serve-grip 2.0.0 cannot do that check itself: it calls @fanoutio/grip 4's validateSig, which
// is async, without awaiting it, so any Grip-Sig at all counts as valid. The middleware below
// awaits the same function.
import express from 'express';
import { ServeGrip } from '@fanoutio/serve-grip';
import { Publisher, WebSocketMessageFormat, validateSig } from '@fanoutio/grip';

const verifyKey = process.env.GRIP_VERIFY_KEY;
const verifyIss = process.env.GRIP_VERIFY_ISS;
const grip = { control_uri: 'http://127.0.0.1:5561/' };
if (verifyKey) {
  grip.verify_key = verifyKey;
}
const serveGrip = new ServeGrip({ grip, gripProxyRequired: Boolean(verifyKey) });

const app = express();

app.get('/publish', async (req, res) => {
  const { control_uri, channel, text } = req.query;
  try {
    const publisher = new Publisher({ control_uri });
    await publisher.publishFormats(channel, [new WebSocketMessageFormat(text)]);
    res.status(200).type('text/plain').send('published\n');
  } catch (e) {
    res.status(500).type('text/plain').send(`publish failed: ${e}\n`);
  }
});

app.use('/ws', async (req, res, next) => {
  if (verifyKey) {
    const sig = req.headers['grip-sig'];
    if (typeof sig !== 'string' || !(await validateSig(sig, verifyKey, verifyIss))) {
      res.status(403).type('text/plain').send('invalid Grip-Sig\n');
      return;
    }
  }
  next();
});

app.use(serveGrip);

app.post('/ws', (req, res) => {
  const ws = req.grip.wsContext;
  if (ws == null) {
    res.status(400).type('text/plain').send('[not a websocket request]\n');
    return;
  }
  if (ws.isOpening()) {
    ws.accept();
    ws.subscribe('room');
  }
  try {
    while (ws.canRecv()) {
      const message = ws.recv();
      if (message == null) {
        // The client closed: close our side too.
        ws.close();
        break;
      }
      ws.send(message);
    }
  } catch (e) {
    // recv() throws on DISCONNECT: nothing more to say to that client.
  }
  res.end();
});

const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});

// Exit with the test that started us: stdin closes when that process goes away.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
