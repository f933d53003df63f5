// An accessor of an addon class called on another object (V8 checks the receiver of methods, not of
// getters): the size getters of the test bindings' TimerWheel and AddressTable read whatever object `this`
// was as one of their own (another class's native object, a number out of its memory), the engine's too.
// They must refuse it.
import { describe, expect, it } from 'vitest'
import { runAddonScript } from './harness/addon-script.ts'

const script = `
const engine = new addon.Engine(() => {})
engine.setRef(false)
const receivers: Record<string, object> = {
  engine,
  replayWindow: new testing.netcode.ReplayWindow(),
  timerWheel: new testing.TimerWheel(),
  addressTable: new testing.netcode.AddressTable(4),
  plain: {},
}
const getters = {
  'TimerWheel size': Object.getOwnPropertyDescriptor(testing.TimerWheel.prototype, 'size')!.get!,
  'AddressTable size': Object.getOwnPropertyDescriptor(testing.netcode.AddressTable.prototype, 'size')!.get!,
}
for (const [getter, get] of Object.entries(getters)) {
  for (const [receiver, object] of Object.entries(receivers)) attempt(getter + ' on ' + receiver, () => get.call(object))
}
attempt('submit on timerWheel', () => addon.Engine.prototype.submit.call(receivers.timerWheel, 0, 0))
engine.shutdown()
`

describe('the addon, with accessors called on objects of other classes', () => {
  it('refuses them, and still serves its own', () => {
    const outcomes = runAddonScript(script, "'returned ' + String(value)") as Record<string, string>
    expect(outcomes).toEqual({
      'TimerWheel size on engine': 'threw TypeError: Illegal invocation',
      'TimerWheel size on replayWindow': 'threw TypeError: Illegal invocation',
      'TimerWheel size on timerWheel': 'returned 0',
      'TimerWheel size on addressTable': 'threw TypeError: Illegal invocation',
      'TimerWheel size on plain': 'threw TypeError: Illegal invocation',
      'AddressTable size on engine': 'threw TypeError: Illegal invocation',
      'AddressTable size on replayWindow': 'threw TypeError: Illegal invocation',
      'AddressTable size on timerWheel': 'threw TypeError: Illegal invocation',
      'AddressTable size on addressTable': 'returned 0',
      'AddressTable size on plain': 'threw TypeError: Illegal invocation',
      'submit on timerWheel': 'threw TypeError: Illegal invocation',
    })
  }, 40_000)
})
