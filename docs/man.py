"""Man pages from the public headers: one page per public function and
per macro worth one, named after it (actx_push.3, ACTX_WAIT_WHILE.3), and
actx.3 for the header's conventions and its types.

Usage: man.py VERSION OUTDIR HEADER...   (OUTDIR: the man3 directory)

The header comments are the contract (thread rule, returns, errors); a
page is its declaration and that comment, nothing written twice.  A
comment that only points elsewhere ("See actx_version().", a macro that
is "actx_stats_size() for ...") gets the comment it points to as well,
and the page it points to shows both declarations.  Functions of a
section whose banner states the thread rule ("Owner thread only.") say
it on their page when their own comment does not.  SConstruct imports
this file for the page names (pages()) and runs it to write them.
"""
import os
import re
import sys

# Names documented in a header that get no page of their own: they are
# shown on the page that uses them (or in actx.3).
NO_PAGE = {'ACTX_EXTERN'}
# Macros that belong on a function's page rather than on one of their own.
ON_PAGE_OF = {'ACTX_VERSION_MAJOR': 'actx_version',
              'ACTX_VERSION_MINOR': 'actx_version',
              'ACTX_VERSION_PATCH': 'actx_version',
              'ACTX_LOG_ERROR': 'actx_set_log_handler',
              'ACTX_LOG_WARNING': 'actx_set_log_handler',
              'ACTX_LOG_DEBUG': 'actx_set_log_handler',
              'actx_refused_fn': 'actx_set_refused_hook',
              'struct actx_stats': 'actx_stats',
              'struct actx_pool_stats': 'actx_pool_stats'}
# How a program gets each header.
LINK = {'actx.h': 'actx', 'actx-glib.h': 'actx-glib',
        'actx-uv.h': 'actx libuv'}


class Item:
    def __init__(self, kind, name, decl, doc, header, section_rule):
        self.kind = kind          # function, macro, type, struct
        self.name = name
        self.decl = decl          # the declaration as written
        self.doc = doc            # the comment's text, prefixes removed
        self.header = header
        self.section_rule = section_rule


def comment_text(raw):
    """The text of a /** ... */ or /**< ... */ comment, one string with
    newlines, the leading ' * ' of each line removed."""
    body = re.sub(r'^/\*\*<?', '', raw)
    body = re.sub(r'\*/$', '', body)
    lines = []
    for line in body.split('\n'):
        line = re.sub(r'^\s*\* ?', '', line) if line.strip().startswith('*') \
            else line.strip()
        lines.append(line.rstrip())
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return '\n'.join(lines)


BANNER = re.compile(r'/\* -{20,} \*/\s*\n/\*\s*(.*?)\s*\*/')
RULE = re.compile(r'(Owner thread only|Any thread)\.')
# A comment that states its own thread rule.
THREAD_RULE = re.compile(r'Owner thread|Any thread|Calling thread|'
                         r'owner thread only')


def parse(path):
    """The documented declarations of one header, in order."""
    text = open(path).read()
    header = os.path.basename(path)
    items = []
    rule = None
    banners = [(m.start(), RULE.search(m.group(1)))
               for m in BANNER.finditer(text)]
    file_doc = None
    for m in re.finditer(r'/\*\*(?!<).*?\*/', text, flags=re.S):
        doc = comment_text(m.group(0))
        if '@file' in doc:
            file_doc = re.sub(r'^@file.*\n', '', doc)
            continue
        rule = None
        for pos, r in banners:
            if pos < m.start():
                rule = r.group(0) if r else None
        rest = text[m.end():].lstrip()
        if rest.startswith('#if'):
            # A macro defined under a condition (ACTX_EXTERN).
            rest = rest[rest.index('#define'):]
        if rest.startswith('#define'):
            end = 0
            lines = rest.split('\n')
            for end, line in enumerate(lines):
                if not line.rstrip().endswith('\\'):
                    break
            decl = '\n'.join(lines[:end + 1])
            name = re.match(r'#define\s+(\w+)', decl).group(1)
            items.append(Item('macro', name, decl, doc, header, rule))
        elif re.match(r'(typedef\s+)?struct\s+\w+\s*\{', rest):
            decl = rest[:rest.index('};') + 2]
            name = 'struct ' + re.match(r'(?:typedef\s+)?struct\s+(\w+)',
                                        decl).group(1)
            items.append(Item('struct', name, decl, doc, header, rule))
        else:
            # A declaration, or the definition of a static inline function
            # (actx-uv.h): its head.
            end = min(i for i in (rest.find(';'), rest.find('{')) if i >= 0)
            decl = rest[:end].rstrip() + ';'
            decl = re.sub(r'\s*/\*\*<.*?\*/', '', decl, flags=re.S)
            if decl.startswith('typedef'):
                name = re.search(r'(\w+)\s*(\(|;)', decl).group(1)
                if '(*' not in decl and re.search(r'\w+\s*\(', decl):
                    name = re.search(r'(\w+)\s*\(', decl).group(1)
                items.append(Item('type', name, decl, doc, header, rule))
            else:
                # The word before the parameter list; "void(actx_stats)(...)"
                # (a function a macro of the same name hides) included.
                m2 = (re.search(r'\((\w+)\)\s*\(', decl) or
                      re.search(r'(\w+)\s*\((?!\*)', decl))
                name = m2.group(1)
                items.append(Item('function', name, decl, doc, header, rule))
    # Types documented on the same line (/**< */ after a typedef).
    for m in re.finditer(r'(typedef[^;{]*?(\w+)\s*\([^;]*\);)\s*'
                         r'(/\*\*<.*?\*/)', text, flags=re.S):
        items.append(Item('type', m.group(2), m.group(1),
                          comment_text(m.group(3)), header, None))
    return file_doc, items


def pointer(item):
    """The name a pointing comment points to, or None."""
    m = re.match(r'(?:Any thread\.\s+)?(?:See|As|Installs the hook '
                 r'described at) (\w+)', item.doc)
    if not m and item.kind == 'macro':
        m = re.match(r'(\w+)\(\) for ', item.doc)
    return m.group(1) if m else None


def page_name(item):
    if item.name in ON_PAGE_OF:
        return ON_PAGE_OF[item.name]
    if item.kind in ('function', 'macro'):
        return item.name
    return None  # types: actx.3


def collect(headers):
    """{page: [items]} in header order, and the overview's parts."""
    pages, order, overview, types = {}, [], [], []
    by_name = {}
    for h in headers:
        file_doc, items = parse(h)
        if os.path.basename(h) == 'actx.h':
            overview.append(file_doc)
        for it in items:
            by_name.setdefault(it.name, it)
            if it.name in NO_PAGE:
                continue
            name = page_name(it)
            if name is None:
                types.append(it)
                continue
            if name not in pages:
                pages[name] = []
                order.append(name)
            pages[name].append(it)
    # A pointing comment brings what it points to; the page pointed to
    # shows the pointer's declaration too.
    for name in order:
        for it in list(pages[name]):
            target = pointer(it)
            if target and target in by_name and by_name[target] not in \
                    pages[name]:
                pages[name].append(by_name[target])
                if target in pages and it not in pages[target]:
                    pages[target].append(it)
    return order, pages, overview, types, by_name


def esc(s):
    return s.replace('\\', '\\e')


def inline(s, names):
    """Troff text of a sentence: names of pages in bold."""
    s = esc(s)

    def bold(m):
        return '\\fB%s\\fP' % m.group(1) if m.group(1) in names \
            else m.group(0)
    return re.sub(r'\b((?:actx|ACTX)_\w+)', bold, s)


def body(text, names):
    """Troff of a comment: paragraphs, '- ' lists, indented code."""
    out = []
    para = []
    lines = text.split('\n')

    def flush():
        if para:
            line = ' '.join(p.strip() for p in para)
            out.append(inline(line, names))
            para.clear()
    i = 0
    item_col = None  # the text column of the list item being read
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        if item_col is not None and line.strip() and indent >= item_col \
                and not re.match(r'\s*- ', line):
            para.append(line)  # the item goes on
            i += 1
            continue
        item_col = None
        if not line.strip():
            flush()
            out.append('.PP')
        elif line.startswith('    '):
            flush()
            out.append('.PP\n.RS 4\n.nf')
            while i < len(lines) and (lines[i].startswith('    ') or
                                      not lines[i].strip()):
                out.append('\\&' + esc(lines[i][4:]))
                i += 1
            out.append('.fi\n.RE\n.PP')
            continue
        elif re.match(r'\s*- ', line):
            flush()
            out.append('.IP \\(bu 2')
            para.append(re.sub(r'^\s*- ', '', line))
            item_col = indent + 2
        else:
            if out and out[-1].startswith('.IP') and not para:
                out.append('.PP')
            para.append(line)
        i += 1
    flush()
    text = '\n'.join(out)
    text = re.sub(r'(\.PP\n)+', '.PP\n', text)
    # A line of text must not start with a control character.
    return re.sub(r'^([.\'])(?!PP|RS|RE|nf|fi|IP)', r'\\&\1', text,
                  flags=re.M).strip('\n').removeprefix('.PP\n')


def _cut_open_paren(s):
    """s cut before a parenthesis it leaves open (split inside it)."""
    depth, start = 0, None
    for i, ch in enumerate(s):
        if ch == '(':
            if depth == 0:
                start = i
            depth += 1
        elif ch == ')' and depth > 0:
            depth -= 1
    return s[:start].rstrip() if depth > 0 else s


def summary(item):
    """The NAME line's text: the comment's first sentence that is not a
    thread rule, up to its first colon or semicolon."""
    doc = ' '.join(item.doc.split())
    doc = re.sub(r'^%s(\(.*?\))?: ' % item.name, '', doc)
    for sentence in re.split(r'(?<=\.)\s+', doc):
        s = re.sub(r'^(Owner thread only|Any thread|Owner thread|Calling '
                   r'thread)(; process-wide)?( \(.*?\))?[.:;]?\s*', '',
                   sentence)
        if s and not s.startswith('See ') and \
                not re.match(r'Since \d+\.\d+\.?$', s):
            s = re.split(r'[:;]\s', s)[0].rstrip('.')
            s = _cut_open_paren(s)
            return s[0].lower() + s[1:] if s[:2] != s[:2].upper() else s
    return item.name


def th(name, version):
    return ('.TH "%s" 3 "" "actx %s" "actx manual"\n'
            % (name.upper(), version))


def format_decl(it):
    """The declaration for the SYNOPSIS: a function on one line, or
    broken after commas and aligned under its parameter list; a struct
    without its member comments (DESCRIPTION lists the members)."""
    decl = re.sub(r'\bACTX_EXTERN\s+', '', it.decl)
    if it.kind == 'struct':
        decl = re.sub(r'\s*/\*\*<.*?\*/', '', decl, flags=re.S)
        return re.sub(r'\s*/\*.*?\*/', '', decl, flags=re.S).split('\n')
    if it.kind == 'macro':
        lines = [line.rstrip(' \\').rstrip() for line in decl.split('\n')]
        if len(lines) > 2:
            # A statement expression: its signature says what it is for.
            return [lines[0] + ' ...']
        return [lines[0] + (' \\' if len(lines) > 1 else '')] + \
            ['    ' + line.strip() for line in lines[1:]]
    decl = ' '.join(decl.split()).replace('( ', '(')
    if len(decl) <= 72:
        return [decl]
    lines, col = [], decl.index('(') + 1
    cur = ''
    for part in re.split(r'(?<=,) ', decl):
        if cur and len(cur) + 1 + len(part) > 72:
            lines.append(cur)
            cur = ' ' * col + part
        else:
            cur = cur + ' ' + part if cur else part
    return lines + [cur]


def members(it, names):
    """A struct's members with their comments, as a tagged list."""
    out = []
    for m in re.finditer(r'([^;{}]*?)\s(\w+);\s*/\*\*<(.*?)\*/', it.decl,
                         flags=re.S):
        ctype = ' '.join(m.group(1).split()).replace('/* Additions. */', '')
        out.append('.TP\n.BI "%s " %s\n%s'
                   % (esc(ctype.strip()), m.group(2),
                      inline(' '.join(m.group(3).split()), names)))
    return '\n'.join(out)


def render(name, items, version, names):
    # The page's own name first (the function before a macro of the same
    # name), then what it shows besides.
    rank = {'function': 0, 'macro': 1, 'type': 2, 'struct': 3}
    items = sorted(items, key=lambda it: (it.name != name, rank[it.kind]))
    main = items[0]
    header = main.header
    about = main  # "See actx_backend_fd().": that one's summary
    if re.match(r'(Any thread\.\s+)?See ', main.doc):
        about = next((it for it in items if it.name == pointer(main)), main)
    out = [th(name, version), '.SH NAME\n%s \\- %s' %
           (esc(name), esc(summary(about)))]
    out.append('.SH SYNOPSIS\n.nf\n.B #include <%s>\n.PP' % header)
    for it in items:
        out += ['\\&' + esc(line) for line in format_decl(it)]
    out.append('.fi\n.PP\nLink with \\fBpkg-config --cflags --libs %s\\fP.'
               % LINK.get(header, 'actx'))
    out.append('.SH DESCRIPTION')
    seen = set()
    on_page = {it.name for it in items}
    # A comment that only points at another one on this page says nothing.
    shown = [it for it in items
             if not (pointer(it) in on_page and len(it.doc) < 80 and
                     (it.kind == 'macro' or
                      re.match(r'(Any thread\.\s+)?See ', it.doc)))]
    for it in shown:
        if it.doc in seen:
            continue
        seen.add(it.doc)
        if len(shown) > 1:
            out.append('.SS %s' % esc(it.name))
        out.append(body(it.doc.replace('see Conventions',
                                       'see Conventions in actx(3)'), names))
        if it.kind == 'struct':
            out.append('.PP\nMembers:\n' + members(it, names))
        if (it.section_rule and it.kind == 'function' and
                not THREAD_RULE.search(it.doc)):
            out.append('.PP\n%s (the rule of its section of %s).'
                       % (it.section_rule.rstrip('.'), it.header))
    refs = []
    text = ' '.join(it.doc for it in items)
    for ref in re.findall(r'\b((?:actx|ACTX)_\w+)', text):
        if ref in names and ref != name and ref not in refs:
            refs.append(ref)
    out.append('.SH SEE ALSO\n' + ',\n'.join(
        '.BR %s (3)' % r for r in ['actx'] + refs))
    return '\n'.join(out) + '\n'


def render_overview(version, overview, types, order, names):
    out = [th('actx', version),
           '.SH NAME\nactx \\- threaded multi-context event-loop runtime',
           '.SH SYNOPSIS\n.nf\n.B #include <actx.h>\n.fi\n.PP\nLink with '
           '\\fBpkg-config --cflags --libs actx\\fP.',
           '.SH DESCRIPTION']
    for doc in overview:
        doc = re.sub(r'^actx\.h - .*\n\s*\n', '', doc)
        out.append(body(doc, names))
    out.append('.SH TYPES')
    for it in types:
        out.append('.PP\n.nf\n%s\n.fi\n.RS 4\n%s\n.RE'
                   % ('\n'.join('\\&' + esc(x) for x in it.decl.split('\n')),
                      body(it.doc, names)))
    out.append('.SH SEE ALSO\n' + ',\n'.join(
        '.BR %s (3)' % n for n in order))
    return '\n'.join(out) + '\n'


def pages(headers, version):
    """{file name: troff text} of every page."""
    order, by_page, overview, types, _ = collect(headers)
    names = set(order) | {'actx'}
    result = {'actx.3': render_overview(version, overview, types, order,
                                        names)}
    for name in order:
        result[name + '.3'] = render(name, by_page[name], version, names)
    return result


def main(argv):
    version, outdir, headers = argv[1], argv[2], argv[3:]
    os.makedirs(outdir, exist_ok=True)
    for fname, text in pages(headers, version).items():
        with open(os.path.join(outdir, fname), 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
