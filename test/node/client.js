// The listening half of the original chatr.ai Node example agent, unchanged
// but for the base URL: EventSource from the `eventsource` package (v2) and
// es.onmessage switching on the event's type. It prints every event it gets
// as one JSON line, and exits after the given number of "message" events.
//
//   node client.js http://127.0.0.1:8080 5
const EventSource = require('eventsource');

const BASE_URL = process.argv[2] || 'http://127.0.0.1:8080';
const want = parseInt(process.argv[3] || '1', 10);
let got = 0;

const es = new EventSource(`${BASE_URL}/api/stream`);
es.onopen = () => console.log(JSON.stringify({ type: 'open' }));
es.onmessage = (event) => {
  const data = JSON.parse(event.data);
  switch (data.type) {
    case 'history':
      console.log(JSON.stringify({ type: 'history', data: data.data }));
      break;
    case 'message':
      console.log(JSON.stringify({ type: 'message', data: data.data, lastEventId: event.lastEventId }));
      if (++got >= want) {
        es.close();
        process.exit(0);
      }
      break;
    case 'stats':
      console.log(JSON.stringify({ type: 'stats', data: data.data }));
      break;
  }
};
es.onerror = (err) => console.error('stream error', err && err.message);
setTimeout(() => { console.error('timed out'); process.exit(2); }, 20000);
