// Errors in the OpenAI shape: {"error": {"message", "type", "param", "code"}} with a 4xx status for
// requests the server will not run, so that OpenAI clients raise their usual exceptions.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status === 404 ? 'not_found_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): ApiError => new ApiError(400, message, param, code);
