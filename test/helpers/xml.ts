// A small, strict XML 1.0 reader for tests (the Atom feed): one root element, matched tags,
// quoted attributes without duplicates, only the five predefined entities and character
// references, no bare "<" or "&" in text, no character XML 1.0 forbids. Namespaces are kept as
// written (xmlns is an attribute). Throws with the offset of the first fault; written without
// looking at agent/feed.ts, so the feed is not checked against itself.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** The element's own character data, entities resolved (children's text not included). */
  text: string;
}

const NAME = /[A-Za-z_:][A-Za-z0-9_:.-]*/y;
const ALLOWED = /^[\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function parseXml(text: string): XmlElement {
  if (!ALLOWED.test(text)) {
    const at = [...text].findIndex((c) => !ALLOWED.test(c));
    throw new Error(`character not allowed in XML 1.0 at code point ${at}`);
  }
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at offset ${i}: ${JSON.stringify(text.slice(i, i + 30))}`);
  };
  const skipSpace = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i] as string)) i++;
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(text);
    if (!m) return fail('expected a name');
    i += m[0].length;
    return m[0];
  };
  const decode = (raw: string): string =>
    raw.replace(/&([^;]*);?/g, (whole, ref: string) => {
      if (!whole.endsWith(';')) return fail('"&" that starts no reference');
      if (ref.startsWith('#x')) return String.fromCodePoint(parseInt(ref.slice(2), 16));
      if (ref.startsWith('#')) return String.fromCodePoint(parseInt(ref.slice(1), 10));
      const e = ENTITIES[ref];
      return e ?? fail(`unknown entity &${ref};`);
    });
  const misc = () => {
    for (;;) {
      skipSpace();
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
      } else if (text.startsWith('<?', i)) {
        const end = text.indexOf('?>', i);
        if (end < 0) fail('unterminated processing instruction');
        i = end + 2;
      } else return;
    }
  };
  const element = (): XmlElement => {
    if (text[i] !== '<') fail('expected "<"');
    i++;
    const el: XmlElement = { name: name(), attrs: {}, children: [], text: '' };
    for (;;) {
      const before = i;
      skipSpace();
      if (text.startsWith('/>', i)) {
        i += 2;
        return el;
      }
      if (text[i] === '>') {
        i++;
        break;
      }
      if (i === before) fail('expected white space before an attribute');
      const key = name();
      skipSpace();
      if (text[i] !== '=') fail('expected "="');
      i++;
      skipSpace();
      const q = text[i];
      if (q !== '"' && q !== "'") fail('expected a quoted value');
      const end = text.indexOf(q as string, i + 1);
      if (end < 0) fail('unterminated attribute value');
      const raw = text.slice(i + 1, end);
      if (raw.includes('<')) fail('"<" in an attribute value');
      if (Object.hasOwn(el.attrs, key)) fail(`duplicate attribute ${key}`);
      el.attrs[key] = decode(raw);
      i = end + 1;
    }
    for (;;) {
      const lt = text.indexOf('<', i);
      if (lt < 0) fail(`unclosed element ${el.name}`);
      el.text += decode(text.slice(i, lt));
      i = lt;
      if (text.startsWith('</', i)) {
        i += 2;
        const closing = name();
        if (closing !== el.name) fail(`expected </${el.name}>, found </${closing}>`);
        skipSpace();
        if (text[i] !== '>') fail('expected ">"');
        i++;
        return el;
      }
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
      } else if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i);
        if (end < 0) fail('unterminated CDATA section');
        el.text += text.slice(i + 9, end);
        i = end + 3;
      } else el.children.push(element());
    }
  };
  if (text.startsWith('\uFEFF')) i = 1;
  misc();
  const root = element();
  misc();
  if (i !== text.length) fail('content after the root element');
  return root;
}

/** The children of `el` named `name`. */
export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** The one child of `el` named `name` (throws when there is none or more than one). */
export function child(el: XmlElement, name: string): XmlElement {
  const found = childrenNamed(el, name);
  if (found.length !== 1) throw new Error(`expected one <${name}> in <${el.name}>, found ${found.length}`);
  return found[0] as XmlElement;
}
