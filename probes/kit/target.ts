// Typed targets: a check's target is parsed once, when the config loads, into what the probe
// needs (host and port, a URL's parts), and the probe never parses it again. Every target keeps
// the text it was written as (`text`), for messages, labels and the API. Targets are plain data:
// they cross to the probe threads as they are.
import { isIP } from 'node:net';
import { z } from 'zod';
import { splitHostPort } from '../../config/fields.js';

/** Every target: at least the text it was written as. */
export interface Target {
  readonly text: string;
}

/** A host (a name or an address, IPv6 without brackets) and a port. */
export interface Endpoint extends Target {
  readonly host: string;
  readonly port: number;
}

/** An http(s) URL: its parts, and `href` to build other URLs from (`new URL(path, href)`). */
export interface WebTarget extends Endpoint {
  readonly href: string;
  readonly secure: boolean;
  readonly origin: string;
}

/** host[:port], the port defaulting to `defaultPort` when it may be left out (IPv6 in brackets with a port). */
export function parseEndpoint(s: string, defaultPort?: number): Endpoint | undefined {
  const withPort = splitHostPort(s);
  if (withPort) return { text: s, ...withPort };
  if (defaultPort === undefined) return undefined;
  if (isIP(s) === 6) return { text: s, host: s, port: defaultPort };
  const bare = /^\[([0-9a-fA-F:.]+)\]$/.exec(s)?.[1] ?? s;
  const hp = splitHostPort(`${isIP(bare) === 6 ? `[${bare}]` : bare}:${defaultPort}`);
  return hp ? { text: s, ...hp } : undefined;
}

/** An http:// or https:// URL with a host. */
export function parseWebTarget(s: string): WebTarget | undefined {
  if (!/^https?:\/\/[^\s/]+/i.test(s) || !URL.canParse(s)) return undefined;
  const u = new URL(s);
  const secure = u.protocol === 'https:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (host === '') return undefined;
  return { text: s, href: u.href, secure, origin: u.origin, host, port: u.port === '' ? (secure ? 443 : 80) : Number(u.port) };
}

/** A target schema: the text checked and parsed on load, with the message a user reads when it is not one. */
export function targetSchema<T extends Target>(parse: (s: string) => T | undefined, message: string): z.ZodType<T, string> {
  return z.string({ error: message }).transform((s, ctx) => {
    const t = parse(s);
    if (t === undefined) {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return t;
  });
}

/** host:port (the port is required). */
export const endpoint = targetSchema((s) => parseEndpoint(s), 'expected host:port (IPv6 in brackets, e.g. [::1]:443) with a port from 1 to 65535');

/** An http(s) URL. */
export const webTarget = targetSchema(parseWebTarget, 'expected an http:// or https:// URL');
