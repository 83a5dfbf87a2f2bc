/*
 * WebSocketBridge for Django Channels (C-84..C-86).
 *
 * A self-contained ES5 script: no build step, no dependencies. Load it with
 *   {% load static %}<script src="{% static 'channels/js/websocketbridge.js' %}"></script>
 * and use the global `channels.WebSocketBridge`, or require/import it (CommonJS, AMD).
 *
 *   var bridge = new channels.WebSocketBridge();
 *   bridge.connect("/ws/");
 *   bridge.listen(function (message, stream) { ... });        // frames without a stream
 *   bridge.demultiplex("notes", function (payload, stream) { ... });
 *   bridge.stream("notes").send({action: "create", data: {title: "hi"}});
 *
 * Stream frames are {"stream": name, "payload": ...}, the format of the server's
 * WebsocketMultiplexer/WebsocketDemultiplexer. The socket reconnects by itself after the
 * connection drops; handlers and listeners stay attached across reconnects.
 *
 * Reconnect delays (C-86): the first is drawn from [minReconnectionDelay, 2 x min), each
 * next one is the last times reconnectionDelayGrowFactor, up to maxReconnectionDelay.
 * After the server closes with 1012 (service restart), 1001 (going away) or 1013 (try
 * again later), every client of a restarting server would come back at about the same
 * moment; the first delay is then drawn from [min, min + restartSpread) instead
 * (restartSpread in ms, default 5000; never narrower than C-86's range).
 */
(function (root, factory) {
  "use strict";
  if (typeof define === "function" && define.amd) {
    define([], factory);
  } else if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.channels = factory();
  }
}(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // C-86: option defaults of the reconnecting socket.
  var SOCKET_DEFAULTS = {
    maxReconnectionDelay: 10000,
    minReconnectionDelay: 1500,
    reconnectionDelayGrowFactor: 1.3,
    connectionTimeout: 4000,
    maxRetries: Infinity,
    restartSpread: 5000,  // issue 17: the first delay's range after a restart close
    debug: false,
    constructor: typeof WebSocket !== "undefined" ? WebSocket : null
  };

  // Close codes a server sends when it stops or sheds load (RFC 6455 section 7.4.1 and
  // the IANA registry): reconnects after them are spread over restartSpread.
  var RESTART_CODES = [1001, 1012, 1013];

  var EVENT_TYPES = ["open", "close", "message", "error"];
  // Read-only socket properties passed through from the current socket.
  var SOCKET_PROPERTIES = ["readyState", "url", "protocol", "extensions", "bufferedAmount"];

  function extend(target) {
    for (var i = 1; i < arguments.length; i++) {
      var source = arguments[i];
      if (source) {
        for (var key in source) {
          if (Object.prototype.hasOwnProperty.call(source, key)) {
            target[key] = source[key];
          }
        }
      }
    }
    return target;
  }

  function makeError(code, text) {
    var error = new Error(text);
    error.code = code;
    error.type = "error";
    return error;
  }

  /*
   * A WebSocket that reconnects after every close unless closed with keepClosed.
   *
   * Events of the current socket are re-dispatched to the listeners and on* handlers
   * registered here, so they survive reconnects; events of a socket already replaced
   * are ignored.
   */
  function ReconnectingWebSocket(url, protocols, options) {
    this._config = extend({}, SOCKET_DEFAULTS, options);
    if (typeof this._config.constructor !== "function") {
      throw new TypeError("ReconnectingWebSocket: no WebSocket implementation; pass " +
        "options.constructor");
    }
    this._url = url;
    this._protocols = protocols;
    this._listeners = {open: [], close: [], message: [], error: []};
    this._handlers = {onopen: null, onclose: null, onmessage: null, onerror: null};
    this._ws = null;
    // The current socket's token; events from a socket whose token is not current (or
    // retired by a fast close) are ignored.
    this._token = null;
    this._binaryType = null;
    this._retries = 0;
    this._reconnectDelay = 0;  // 0: the next close draws a fresh initial delay
    this._forcedDelay = 0;     // close(..., {delay}) sets the next delay exactly
    this._shouldRetry = true;
    this._connectTimer = null;
    this._reconnectTimer = null;
    this._connect();
  }

  ReconnectingWebSocket.CONNECTING = 0;
  ReconnectingWebSocket.OPEN = 1;
  ReconnectingWebSocket.CLOSING = 2;
  ReconnectingWebSocket.CLOSED = 3;

  var proto = ReconnectingWebSocket.prototype;

  SOCKET_PROPERTIES.forEach(function (name) {
    Object.defineProperty(proto, name, {
      get: function () { return this._ws ? this._ws[name] : undefined; },
      enumerable: true,
      configurable: true
    });
  });

  Object.defineProperty(proto, "binaryType", {
    get: function () { return this._ws ? this._ws.binaryType : this._binaryType; },
    set: function (value) {
      this._binaryType = value;  // kept for the sockets of later reconnects
      if (this._ws) { this._ws.binaryType = value; }
    },
    enumerable: true,
    configurable: true
  });

  EVENT_TYPES.forEach(function (type) {
    var name = "on" + type;
    Object.defineProperty(proto, name, {
      get: function () { return this._handlers[name]; },
      set: function (handler) { this._handlers[name] = handler || null; },
      enumerable: true,
      configurable: true
    });
  });

  proto._log = function () {
    if (this._config.debug && typeof console !== "undefined") {
      console.log.apply(console, ["RWS:"].concat(Array.prototype.slice.call(arguments)));
    }
  };

  proto._connect = function () {
    if (!this._shouldRetry) { return; }
    var self = this;
    var ws = new this._config.constructor(this._url, this._protocols);
    var token = {retired: false};
    if (this._binaryType !== null) { ws.binaryType = this._binaryType; }
    this._ws = ws;
    this._token = token;
    this._log("connect", this._url);
    this._connectTimer = setTimeout(function () {
      if (token !== self._token || token.retired) { return; }
      self._log("timeout");
      ws.close();  // its close event schedules the next try
      self._emitError("ETIMEDOUT", "Connection timeout");
    }, this._config.connectionTimeout);
    EVENT_TYPES.forEach(function (type) {
      ws.addEventListener(type, function (event) {
        if (token === self._token && !token.retired) { self["_on" + type](event); }
      });
    });
  };

  proto._onopen = function (event) {
    clearTimeout(this._connectTimer);
    this._log("open");
    // C-86: an open resets the delay and the retry count.
    this._reconnectDelay = 0;
    this._retries = 0;
    this._dispatch("open", event);
  };

  proto._onmessage = function (event) { this._dispatch("message", event); };

  proto._onerror = function (event) { this._dispatch("error", event); };

  proto._onclose = function (event) {
    clearTimeout(this._connectTimer);
    this._dispatch("close", event);
    this._scheduleReconnect(RESTART_CODES.indexOf(event.code) >= 0);
  };

  // `restart`: the server closed with one of RESTART_CODES.
  proto._scheduleReconnect = function (restart) {
    if (!this._shouldRetry) { return; }  // closed with keepClosed: not a failed attempt
    this._retries += 1;
    if (this._retries > this._config.maxRetries) {
      this._emitError("EHOSTDOWN", "Too many failed connection attempts");
      return;
    }
    var config = this._config;
    if (this._forcedDelay) {
      this._reconnectDelay = this._forcedDelay;
      this._forcedDelay = 0;
    } else if (!this._reconnectDelay) {
      // C-86: the first delay is drawn from [min, 2 * min) so clients spread out; after
      // a server restart from [min, min + restartSpread), wider by default (issue 17).
      var spread = config.minReconnectionDelay;
      if (restart && config.restartSpread > spread) { spread = config.restartSpread; }
      this._reconnectDelay = config.minReconnectionDelay + Math.random() * spread;
    } else {
      this._reconnectDelay = Math.min(
        this._reconnectDelay * config.reconnectionDelayGrowFactor,
        config.maxReconnectionDelay
      );
    }
    this._log("reconnect in", this._reconnectDelay, "ms");
    var self = this;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(function () { self._connect(); }, this._reconnectDelay);
  };

  proto._emitError = function (code, text) {
    var self = this;
    // Asynchronous, like the socket's own events.
    setTimeout(function () { self._dispatch("error", makeError(code, text)); }, 0);
  };

  proto._dispatch = function (type, event) {
    var handler = this._handlers["on" + type];
    if (handler) { handler.call(this, event); }
    var listeners = this._listeners[type].slice();
    for (var i = 0; i < listeners.length; i++) {
      var listener = listeners[i];
      if (typeof listener === "function") {
        listener.call(this, event);
      } else if (listener && typeof listener.handleEvent === "function") {
        listener.handleEvent(event);
      }
    }
  };

  proto.addEventListener = function (type, listener) {
    if (!this._listeners[type]) {
      throw new TypeError("ReconnectingWebSocket: unknown event type " + type +
        "; use one of " + EVENT_TYPES.join(", "));
    }
    if (this._listeners[type].indexOf(listener) < 0) { this._listeners[type].push(listener); }
  };

  proto.removeEventListener = function (type, listener) {
    var listeners = this._listeners[type] || [];
    var index = listeners.indexOf(listener);
    if (index >= 0) { listeners.splice(index, 1); }
  };

  proto.send = function (data) {
    this._ws.send(data);
  };

  /*
   * close(code = 1000, reason = "", {keepClosed: false, fastClose: true, delay: 0})
   *
   * Reconnects afterwards unless keepClosed. fastClose runs the close handlers now with a
   * stand-in event instead of waiting for the closing handshake; delay (ms) sets the wait
   * before reconnecting.
   */
  proto.close = function (code, reason, options) {
    code = code === undefined ? 1000 : code;
    reason = reason === undefined ? "" : reason;
    options = extend({keepClosed: false, fastClose: true, delay: 0}, options);
    this._forcedDelay = options.delay || 0;
    this._shouldRetry = !options.keepClosed;
    clearTimeout(this._reconnectTimer);
    this._ws.close(code, reason);
    if (options.fastClose) {
      // The old socket's real close event, when it comes, is ignored.
      this._token.retired = true;
      clearTimeout(this._connectTimer);
      this._dispatch("close", {type: "close", code: code, reason: reason, wasClean: true});
      this._scheduleReconnect();
    }
  };

  /*
   * WebSocketBridge: JSON frames, a default callback and per-stream callbacks (C-85).
   */
  function WebSocketBridge(options) {
    this.options = extend({}, options);
    this.socket = null;
    this.streams = {};
    this.default_cb = null;
  }

  WebSocketBridge.prototype.connect = function (url, protocols, options) {
    var target;
    if (url && url.charAt(0) !== "/") {
      target = url;  // absolute ws:// or wss:// URL
    } else {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var base = scheme + window.location.host;
      target = url ? base + url : base;
    }
    this.socket = new ReconnectingWebSocket(target, protocols, extend({}, this.options, options));
  };

  WebSocketBridge.prototype._requireSocket = function (method) {
    if (!this.socket) {
      throw new Error("WebSocketBridge: call connect() before " + method + "()");
    }
  };

  WebSocketBridge.prototype.listen = function (cb) {
    var self = this;
    this._requireSocket("listen");
    this.default_cb = cb;
    this.socket.onmessage = function (event) {
      var message = parseFrame(event.data);
      if (message !== null && typeof message === "object" && message.stream !== undefined) {
        var streamCb = self.streams[message.stream];
        if (streamCb) { streamCb(message.payload, message.stream); }
      } else if (self.default_cb) {
        self.default_cb(message, null);
      }
    };
  };

  WebSocketBridge.prototype.demultiplex = function (stream, cb) {
    this.streams[stream] = cb;
  };

  WebSocketBridge.prototype.send = function (msg) {
    this._requireSocket("send");
    this.socket.send(JSON.stringify(msg));
  };

  WebSocketBridge.prototype.stream = function (name) {
    var self = this;
    return {
      send: function (action) {
        self._requireSocket("send");
        self.socket.send(JSON.stringify({stream: name, payload: action}));
      }
    };
  };

  function parseFrame(data) {
    if (typeof data !== "string") {
      throw new TypeError("WebSocketBridge: got a binary frame; the bridge speaks JSON text " +
        "frames only");
    }
    try {
      return JSON.parse(data);
    } catch (error) {
      throw new SyntaxError("WebSocketBridge: got a text frame that is not JSON (" +
        error.message + "): " + data.slice(0, 100));
    }
  }

  return {
    WebSocketBridge: WebSocketBridge,
    ReconnectingWebSocket: ReconnectingWebSocket
  };
}));
