// Where a JSON text stops being JSON, for an error a person can find in the file: V8's message gives the
// position for most mistakes, but not for an unexpected token (it quotes the text instead, however long).

/** A JSON.parse() error said with its line and column in `text`: "at line 3, column 5: Expected ',' or '}' after property value". */
export function jsonErrorText(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error)
  const stated = /\bat position (\d+)/.exec(message)
  const offset = stated === null ? jsonErrorOffset(text) : Number(stated[1])
  const reason = message
    .replace(/,? (?:in JSON )?at position \d+.*$/s, '') // said as a line and column instead
    .replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '') // the text quoted back, or its end
  const before = text.slice(0, offset).split('\n')
  return `at line ${before.length}, column ${before.at(-1)!.length + 1}: ${reason}`
}

/** The offset of the first character where `text` is no JSON (its length when it ends too soon; -1 when it is JSON). */
export function jsonErrorOffset(text: string): number {
  let at = 0
  const whitespace = (): void => {
    while (at < text.length && ' \t\n\r'.includes(text[at]!)) at++
  }
  const fail = (): never => {
    throw at
  }
  const value = (): void => {
    whitespace()
    const char = text[at]
    if (char === '{') {
      at++
      whitespace()
      if (text[at] === '}') return void at++
      for (;;) {
        whitespace()
        if (text[at] !== '"') fail()
        string()
        whitespace()
        if (text[at] !== ':') fail()
        at++
        value()
        whitespace()
        if (text[at] === '}') return void at++
        if (text[at] !== ',') fail()
        at++
      }
    }
    if (char === '[') {
      at++
      whitespace()
      if (text[at] === ']') return void at++
      for (;;) {
        value()
        whitespace()
        if (text[at] === ']') return void at++
        if (text[at] !== ',') fail()
        at++
      }
    }
    if (char === '"') return string()
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, at)) return void (at += literal.length)
    }
    const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y
    number.lastIndex = at
    if (number.exec(text) !== null) return void (at = number.lastIndex)
    fail()
  }
  const string = (): void => {
    at++ // the opening quote
    while (at < text.length) {
      const code = text.charCodeAt(at)
      if (code === 0x22) return void at++
      if (code < 0x20) fail()
      if (code === 0x5c) {
        const escape = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y
        escape.lastIndex = at
        if (escape.exec(text) === null) fail()
        at = escape.lastIndex
      } else {
        at++
      }
    }
    fail()
  }
  try {
    value()
    whitespace()
    return at < text.length ? at : -1
  } catch (offset) {
    if (typeof offset !== 'number') throw offset
    return offset
  }
}
