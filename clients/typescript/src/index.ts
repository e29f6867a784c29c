export type { ApiClient, ApiMethod, RequestBody, ResponseBody } from './api-types.js'
export {
  createOrderFlowClient,
  type FollowJobOptions,
  type GenerateOptions,
  type GenerateRequest,
  type GenerationEvent,
  type Job,
  type JobEvent,
  type JobStatus,
  type OrderFlowClient,
  type OrderFlowClientOptions,
  type Tokens,
} from './client.js'
export { ApiError, type FieldError, type Problem, SessionExpiredError } from './errors.js'
export { type EventSourceMessage, readEventStream } from './event-stream.js'
export type { components, paths } from './openapi.generated.js'
