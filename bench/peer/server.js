// The peer of session-api in bench/peer.sh: the same session routes on express-session with
// connect-dynamodb, the usual Node.js way to keep sessions in DynamoDB.
//
//   GET /health    200 {"status":"ok"}, never touches the session
//   GET /counter   increments `count`, 200 {"count": n}
//   GET /session   200 with the session data ({} when none), read-only
//
// Configured as its documentation recommends: resave and saveUninitialized off, a 30-minute
// idle expiry (session-api runs with AWS_DYNAMO_DB_SESSION_MAX_STALE=1800), a plain-HTTP
// cookie on loopback. Environment: PORT, SESSION_TABLE, SESSION_SECRET,
// AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION and the AWS credentials.
"use strict";

const { DynamoDBClient } = require("@aws-sdk/client-dynamodb");
const express = require("express");
const session = require("express-session");
const DynamoDBStore = require("connect-dynamodb")(session);

const IDLE_EXPIRY_MS = 30 * 60 * 1000;

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`set ${name}`);
  }
  return value;
}

// connect-dynamodb 3.0.5's touch makes one UpdateItem (ReturnValues UPDATED_NEW) and then
// reads `Attributes.expires` from the answer. moto leaves an attribute out of that answer when
// the update wrote the value it already had (two touches of one session within a second often
// do), and the store then reports a TypeError for an update that succeeded; express-session
// would answer 500. This treats that one case as the success it is. It makes no DynamoDB call
// of its own: the calls counted are the library's.
function tolerateUnchangedTouch(store) {
  const touch = store.touch.bind(store);
  store.touch = (sid, sess, done = () => {}) =>
    touch(sid, sess, (error, result) =>
      error instanceof TypeError ? done(null, {}) : done(error, result),
    );
}

async function main() {
  const store = new DynamoDBStore({
    client: new DynamoDBClient({
      endpoint: required("AWS_ENDPOINT_URL_DYNAMODB"),
      region: process.env.AWS_REGION || "us-east-1",
    }),
    table: required("SESSION_TABLE"),
  });
  // Creates the table when missing, before the first request rather than during one.
  await store.initialize();
  tolerateUnchangedTouch(store);

  const app = express();
  app.disable("x-powered-by");
  // Registered before the session middleware: like session-api's, it never loads a session.
  app.get("/health", (req, res) => res.json({ status: "ok" }));
  app.use(
    session({
      store,
      secret: required("SESSION_SECRET"),
      name: "session",
      resave: false,
      saveUninitialized: false,
      cookie: {
        secure: false,
        httpOnly: true,
        sameSite: "lax",
        maxAge: IDLE_EXPIRY_MS,
      },
    }),
  );
  app.get("/counter", (req, res) => {
    req.session.count = (req.session.count || 0) + 1;
    res.json({ count: req.session.count });
  });
  app.get("/session", (req, res) => {
    const { cookie, ...data } = req.session;
    res.json(data);
  });

  const port = Number(required("PORT"));
  app.listen(port, "127.0.0.1", () => {
    console.log(`express-session peer on http://127.0.0.1:${port}`);
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
