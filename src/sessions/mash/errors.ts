// A device's refusal of a request, as a typed error a controller's promise rejects with.
import { VolleyError } from '../../util/errors.ts'
import { mashStatusName } from './wire.ts'

/** A request the device answered with a status other than SUCCESS. code: 'ERR_MASH_STATUS'. */
export class MashStatusError extends VolleyError {
  /** The MASH status code (1 INVALID_ENDPOINT … 13 RESOURCE_EXHAUSTED). */
  readonly status: number
  /** Its name, as in MashStatus. */
  readonly statusName: string
  /** The device's own text ({1: text} in the error payload), when it sent one. */
  readonly detail: string | undefined

  /** what: the request refused, for the message (a device's handler throws one with its status and detail). */
  constructor(status: number, detail?: string, what = 'request') {
    const statusName = mashStatusName(status)
    super('ERR_MASH_STATUS', `The device refused the ${what}: ${statusName}${detail !== undefined ? ` (${detail})` : ''}`)
    this.status = status
    this.statusName = statusName
    this.detail = detail
  }
}
