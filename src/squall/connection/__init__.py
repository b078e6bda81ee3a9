"""The connection core: where a request goes.

One accepted socket is one :class:`~squall.connection.transport.Connection`,
the shell. It alone touches the asyncio transport: it reads, writes (holding
output until the loop turns, so the answers of one read share a write),
pauses reading, waits for the peer to drain, and runs the connection's one
timer. It holds exactly one protocol handler and feeds it every read:

* :class:`~squall.connection.h1.H1Handler` (HTTP/1.1), where every connection
  starts unless TLS negotiated ``h2``;
* :class:`~squall.connection.h2.H2Handler` (HTTP/2: ALPN ``h2``, the cleartext
  preface, or ``Upgrade: h2c`` through :mod:`squall.connection.h2c`), whose
  streams live in :mod:`squall.connection.h2streams`;
* :class:`~squall.connection.ws.WSHandler` (WebSocket after an HTTP/1.1
  upgrade).

A handler sees its connection only as a
:class:`~squall.connection.port.ConnectionPort`; when a read changes the
protocol it returns a :class:`~squall.connection.port.Switch`, and the shell
holds the new handler from then on.

A request's way, for every protocol:

1. The handler's sans-I/O parser (:mod:`squall.protocols`) turns bytes into a
   :class:`~squall.protocols.http1.head.RequestHead`.
2. :mod:`squall.connection.admit`, the one admission path, builds the scope
   (proxy headers included) and picks the app: the server's app, the health
   path, or a refusal (400, 413, 503); a WebSocket handshake is admitted or
   refused the same way.
3. The request runs as an :class:`~squall.asgi.http.HTTPCycle` (or a
   :class:`~squall.asgi.websocket.WebSocketSession`) in a task of its own,
   tracked by the server until it returns.
4. The cycle calls back its sink (the HTTP/1 handler, or the HTTP/2 stream)
   to put the response on the wire.

Deadlines have names (:class:`~squall.connection.port.Deadline`): keep-alive,
request head, request body, write stall and shutdown grace, per connection;
an HTTP/2 connection gives each stream the request-body and write-stall
deadlines too (:mod:`squall.connection.h2deadlines`). The clock is the
loop's unless a test passes another.

Imports run one way: ``protocols`` <- ``asgi`` <- ``connection`` <- ``server``.
"""
