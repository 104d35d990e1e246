// Segment's and RudderStack's Node SDKs, each pointed at the tracker by its host option
// only, make every call type once (a Level Up twice with one messageId), then flush.
// Usage: node node_sdks.mjs TRACKER_URL WRITE_KEY
// Prints one JSON line: the errors each SDK reported (tests/segment/test_sdk_e2e.py).
import { Analytics as SegmentAnalytics } from "@segment/analytics-node"
import RudderAnalytics from "@rudderstack/rudder-sdk-node"

const [url, writeKey] = process.argv.slice(2)
const errors = { segment: [], rudderstack: [] }

// The game's context, as a server would give it for its players' devices.
const context = () => ({ os: { name: "Android", version: "14" }, app: { name: "Space Raiders", version: "4.5.6" } })

// The calls of one SDK for `player`; `send(type, message)` calls the SDK's method of that type.
function calls(send, player, sdk) {
  const order = { order_id: `${sdk}-order-1`, revenue: 4.99, currency: "EUR", products: [{ product_id: "gems_100" }] }
  send("track", { userId: player, event: "Order Completed", properties: order })
  for (let i = 0; i < 2; i++) {
    // The same messageId twice, as a retry after a lost answer sends it: stored once.
    const levelUp = { event: "Level Up", properties: { level: 3 }, messageId: `${sdk}-level-up-msg` }
    send("track", { userId: player, anonymousId: `${sdk}-anon`, ...levelUp })
  }
  send("identify", { userId: player, anonymousId: `${sdk}-anon`, traits: { name: "Ada", guild: "Knights" } })
  send("page", { userId: player, name: "Shop", category: "Store", properties: { path: "/shop" } })
  send("screen", { userId: player, name: "Main Menu", properties: { from: "boot" } })
  send("group", { userId: player, groupId: "guild-7", traits: { name: "Knights" } })
  send("alias", { userId: player, previousId: `${sdk}-anon` })
}

async function segment() {
  const analytics = new SegmentAnalytics({ writeKey, host: url, flushInterval: 50, maxRetries: 2 })
  analytics.on("error", (error) => errors.segment.push(String(error.reason ?? error.message ?? error)))
  calls((type, message) => analytics[type]({ ...message, context: context() }), "node-segment-player", "segment")
  await analytics.closeAndFlush({ timeout: 20000 })
}

async function rudderstack() {
  // Its defaults: gzip, application/x-www-form-urlencoded, the write key as Basic user name.
  const analytics = new RudderAnalytics(writeKey, {
    dataPlaneUrl: url,
    flushInterval: 50,
    retryCount: 2,
    logLevel: "error",
    errorHandler: (error) => errors.rudderstack.push(String(error.message ?? error)),
  })
  calls((type, message) => analytics[type]({ ...message, context: context() }), "node-rudder-player", "rudderstack")
  await analytics.flush()
}

await Promise.all([segment(), rudderstack()])
console.log(JSON.stringify(errors))
