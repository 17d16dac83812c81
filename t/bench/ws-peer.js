// The WebSocket bench's peer (t/bench/ws): Node with the npm `ws` package
// (installed for the bench only, in the build directory), serving what
// portico's `websocket = echo` and `websocket = chat` routes serve:
// /echo sends every message back; any other path is a room whose every
// message goes to every member, the sender included.  No compression
// (ws's default), as the load generator offers none.
"use strict";
const http = require("http");
const { WebSocketServer } = require(process.env.WS_MODULE);

const port = Number(process.argv[2]);
const server = http.createServer((req, res) => {
	res.writeHead(426, { Upgrade: "websocket" });
	res.end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 20 });
const rooms = new Map();

wss.on("connection", (ws, req) => {
	const url = req.url;
	if (url.startsWith("/echo")) {
		ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
		return;
	}
	let room = rooms.get(url);
	if (room === undefined) {
		room = new Set();
		rooms.set(url, room);
	}
	room.add(ws);
	ws.on("message", (data, isBinary) => {
		for (const m of room)
			m.send(data, { binary: isBinary });
	});
	ws.on("close", () => {
		room.delete(ws);
		if (room.size === 0)
			rooms.delete(url);
	});
});
server.listen(port, "127.0.0.1", () => console.log("listening"));
