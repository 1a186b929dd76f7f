// Errors a GuestAgent call rejects with: the guest's own error answers (decoded message, wire
// code) and the client's (timeout, connection lost, checksum mismatch), one class for both so
// callers write `if (e instanceof GuestAgentError && e.code === 'ENOENT')`.
import { errnoName } from '../errors';
import { STRERROR } from '../strerror';

/** `code` for a guest error answer that carries no errno (wire code -1). */
export const EGUEST = 'EGUEST';

export class GuestAgentError extends Error {
  /**
   * 'ENOENT', 'EACCES', ... for a guest error with an errno; 'EGUEST' for one without (wire
   * code -1); for failures on the host side: 'ETIMEDOUT', 'ECONNRESET' (connection lost with
   * the request in flight), 'ENOTCONN', 'EMSGSIZE' (request longer than the agent's line
   * limit), 'EPROTO' (an answer that is not the protocol; `speaks` set when it is the other one), 'ECHECKSUM' (md5 mismatch after a copy).
   */
  readonly code: string;
  /** The wire code of a guest error (errno, or -1); -1 for failures on the host side. */
  readonly errno: number;
  /** The command that failed, when there was one. */
  readonly command?: string;
  /** True when the guest answered with this error; false when it was raised on the host. */
  readonly remote: boolean;
  /** A qemu-ga error answer's class ('GenericError', 'CommandNotFound', ...); absent otherwise. */
  readonly errorClass?: string;
  /** EPROTO because the agent answers in the other protocol: the one it speaks. */
  readonly speaks?: 'phoenix' | 'qemu-ga';

  constructor(
    message: string,
    opts: {
      code: string;
      errno?: number;
      command?: string;
      remote?: boolean;
      cause?: unknown;
      errorClass?: string;
      speaks?: 'phoenix' | 'qemu-ga';
    },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GuestAgentError';
    this.code = opts.code;
    this.errno = opts.errno ?? -1;
    this.command = opts.command;
    this.remote = opts.remote ?? false;
    if (opts.errorClass !== undefined) this.errorClass = opts.errorClass;
    if (opts.speaks !== undefined) this.speaks = opts.speaks;
  }

  /**
   * A qemu-ga error answer, `{"class": CLASS, "desc": TEXT}`: the message is `desc`, and `code`
   * the errno's name when `desc` ends with strerror()'s text for one, as qemu-ga words a failed
   * system call ("failed to open file '/x' (mode: 'r'): No such file or directory"), else EGUEST.
   */
  static fromQmpError(error: { class?: unknown; desc?: unknown }, command?: string): GuestAgentError {
    const desc = typeof error.desc === 'string' ? error.desc : 'error answer without a desc';
    const errorClass = typeof error.class === 'string' ? error.class : 'GenericError';
    const errno = errnoOfText(desc);
    return new GuestAgentError(desc, {
      code: errno === undefined ? EGUEST : errnoName(errno),
      errno: errno ?? -1,
      command,
      remote: true,
      errorClass,
    });
  }

  /** An error answer: `{"bufb64": BASE64(message), "code": N}`. */
  static fromAnswer(error: { bufb64?: unknown; code?: unknown }, command?: string): GuestAgentError {
    const message =
      typeof error.bufb64 === 'string'
        ? Buffer.from(error.bufb64, 'base64').toString('utf8')
        : 'error answer without a message';
    const errno = typeof error.code === 'number' && Number.isInteger(error.code) ? error.code : -1;
    return new GuestAgentError(message, { code: errno > 0 ? errnoName(errno) : EGUEST, errno, command, remote: true });
  }
}

export function hostError(code: string, message: string, command?: string, cause?: unknown): GuestAgentError {
  return new GuestAgentError(message, { code, command, cause });
}

let byText: Map<string, number> | undefined;

/** The errno whose strerror() text ends `desc` after a ": ", if any. */
function errnoOfText(desc: string): number | undefined {
  const at = desc.lastIndexOf(': ');
  if (at < 0) return undefined;
  if (!byText) {
    byText = new Map();
    for (const [n, text] of Object.entries(STRERROR))
      if (Number(n) > 0 && !byText.has(text)) byText.set(text, Number(n));
  }
  return byText.get(desc.slice(at + 2).toLowerCase());
}
