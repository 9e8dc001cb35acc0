import { RailError } from '@replayrail/client';

// What a failed call says, as every panel shows it: the server's "code: message", or the
// exception as it prints (the network down).
export const errorText = (e: unknown): string =>
  e instanceof RailError ? `${e.code}: ${e.message}` : String(e);
